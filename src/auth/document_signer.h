#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>

#include "common/result.h"

namespace openimds::auth {

// The three signed forms of an EC2 instance identity document (ec2.md §1.8),
// each over the exact bytes served at dynamic/instance-identity/document:
enum class DocumentFormat {
  // "signature": raw PKCS#1 v1.5 RSA-SHA256 signature, base64 wrapped at 76
  // columns. Verify: openssl dgst -sha256 -verify key -signature sig document
  kSignature,
  // "pkcs7": CMS SignedData (SHA-256) with the document attached and no
  // certificates inside, PEM body without the BEGIN/END lines. Verify:
  // openssl smime -verify -in pkcs7 -inform PEM -content document
  //   -certfile certificate -noverify
  kPkcs7,
  // "rsa2048": the same CMS form made with an RSA key of at least 2048 bits.
  kRsa2048,
};

// Signs identity documents with keys and certificates the operator supplies
// (PEM text; app/ reads the files). Signing is slow (an RSA signature per
// artifact), so each artifact is made once per distinct document and cached
// by the document's SHA-256: a document only changes when its instance does.
//
// Thread-safe. The cache is guarded by a mutex that is held only to look up
// and insert, never while signing; the guest hot path (other leaves) never
// touches this class.
class DocumentSigner {
 public:
  struct Options {
    // Key and certificate for "signature" and "rsa2048" (RSA, at least 2048
    // bits: the rsa2048 form promises it).
    std::string key_pem;
    std::string certificate_pem;
    // Key and certificate for "pkcs7" (EC2 uses DSA; RSA, DSA and EC keys
    // work). Empty: key_pem / certificate_pem.
    std::string pkcs7_key_pem;
    std::string pkcs7_certificate_pem;
    // Distinct documents whose artifacts are kept; beyond it the cache starts
    // over (one document per instance, so size it to the fleet).
    size_t max_cached_documents = 16384;
  };

  // InvalidArgument (saying which input) when a PEM does not parse, a key is
  // not of a usable type or too small, or a certificate does not match its
  // key. Never includes key material in the message.
  static common::Result<std::unique_ptr<DocumentSigner>> Create(const Options& options);

  ~DocumentSigner();
  DocumentSigner(const DocumentSigner&) = delete;
  DocumentSigner& operator=(const DocumentSigner&) = delete;

  // Appends the `format` artifact for `document` to `out`. Internal when
  // OpenSSL fails (then `out` is unchanged).
  common::Status Append(DocumentFormat format, std::string_view document, std::string& out) const;

  // Signatures made so far (cache misses), for tests and metrics.
  uint64_t signings() const;

 private:
  struct Keys;
  struct Entry {
    std::optional<std::string> artifact[3];  // by DocumentFormat
  };
  using Digest = std::array<uint8_t, 32>;
  struct DigestHash {
    size_t operator()(const Digest& d) const;
  };

  explicit DocumentSigner(std::unique_ptr<Keys> keys, size_t max_cached);
  common::Result<std::string> Sign(DocumentFormat format, std::string_view document) const;

  // Constant after construction.
  const std::unique_ptr<Keys> keys_;
  const size_t max_cached_;

  mutable std::mutex mu_;
  mutable std::unordered_map<Digest, Entry, DigestHash> cache_;  // guarded by mu_
  mutable uint64_t signings_ = 0;                                // guarded by mu_
};

// A key pair and self-signed certificate for labs (`openimds keygen`).
struct SigningIdentity {
  std::string key_pem;  // PKCS#8, unencrypted: store it with mode 0600
  std::string certificate_pem;
};
struct SigningIdentityOptions {
  enum class Algorithm { kRsa, kDsa };
  Algorithm algorithm = Algorithm::kRsa;
  int bits = 2048;
  // Certificate subject common name and lifetime.
  std::string common_name = "OpenIMDS instance identity";
  int days = 3650;
};
// Internal when key generation or certificate signing fails; InvalidArgument
// for bits below 2048 or days < 1.
common::Result<SigningIdentity> GenerateSigningIdentity(const SigningIdentityOptions& options);

}  // namespace openimds::auth
