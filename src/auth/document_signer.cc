#include "auth/document_signer.h"

#include <openssl/bio.h>
#include <openssl/bn.h>
#include <openssl/core_names.h>
#include <openssl/crypto.h>
#include <openssl/dsa.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
// After pem.h: cms.h declares its PEM functions with pem.h's macros.
#include <openssl/cms.h>
#include <openssl/rand.h>
#include <openssl/x509.h>

#include <cstring>

#include "common/encoding.h"

namespace openimds::auth {
namespace {

using common::Result;
using common::Status;

// RAII for the OpenSSL handles this file uses.
struct BioFree {
  void operator()(BIO* b) const { BIO_free(b); }
};
struct PkeyFree {
  void operator()(EVP_PKEY* k) const { EVP_PKEY_free(k); }
};
struct X509Free {
  void operator()(X509* x) const { X509_free(x); }
};
struct MdCtxFree {
  void operator()(EVP_MD_CTX* c) const { EVP_MD_CTX_free(c); }
};
struct PkeyCtxFree {
  void operator()(EVP_PKEY_CTX* c) const { EVP_PKEY_CTX_free(c); }
};
struct CmsFree {
  void operator()(CMS_ContentInfo* c) const { CMS_ContentInfo_free(c); }
};
using Bio = std::unique_ptr<BIO, BioFree>;
using Pkey = std::unique_ptr<EVP_PKEY, PkeyFree>;
using Cert = std::unique_ptr<X509, X509Free>;
using MdCtx = std::unique_ptr<EVP_MD_CTX, MdCtxFree>;
using PkeyCtx = std::unique_ptr<EVP_PKEY_CTX, PkeyCtxFree>;
using Cms = std::unique_ptr<CMS_ContentInfo, CmsFree>;

// EC2's signature is MIME-style base64 (ec2.md §1.8: 76-column lines).
constexpr int kSignatureLineWidth = 76;

Bio MemoryBio(std::string_view bytes) {
  return Bio(BIO_new_mem_buf(bytes.data(), static_cast<int>(bytes.size())));
}

std::string BioText(BIO* bio) {
  char* data = nullptr;
  const long n = BIO_get_mem_data(bio, &data);
  return n > 0 ? std::string(data, static_cast<size_t>(n)) : std::string();
}

// The error queue is drained so that a later, unrelated failure does not
// report this one; its text never contains key material.
void ClearErrors() { ERR_clear_error(); }

Result<Pkey> ParseKey(std::string_view pem, std::string_view what) {
  Bio bio = MemoryBio(pem);
  Pkey key(bio ? PEM_read_bio_PrivateKey(bio.get(), nullptr, nullptr, nullptr) : nullptr);
  ClearErrors();
  if (!key) return common::InvalidArgument(std::string(what) + " is not a PEM private key");
  return key;
}

Result<Cert> ParseCertificate(std::string_view pem, std::string_view what) {
  Bio bio = MemoryBio(pem);
  Cert cert(bio ? PEM_read_bio_X509(bio.get(), nullptr, nullptr, nullptr) : nullptr);
  ClearErrors();
  if (!cert) return common::InvalidArgument(std::string(what) + " is not a PEM certificate");
  return cert;
}

Status CheckPair(X509* cert, EVP_PKEY* key, std::string_view what) {
  const int match = X509_check_private_key(cert, key);
  ClearErrors();
  if (match != 1) {
    return common::InvalidArgument(std::string(what) +
                                   ": the certificate does not belong to the key");
  }
  return Status::Ok();
}

// PEM "-----BEGIN CMS-----\n<body>\n-----END CMS-----\n" -> "<body>": the form
// EC2 serves (the AWS procedure adds its own "BEGIN PKCS7" lines and a
// newline before the END line, so the body has no final newline).
std::string PemBody(const std::string& pem) {
  const size_t first_newline = pem.find('\n');
  const size_t end_line = pem.rfind("-----END");
  if (first_newline == std::string::npos || end_line == std::string::npos ||
      end_line <= first_newline) {
    return {};
  }
  std::string body = pem.substr(first_newline + 1, end_line - first_newline - 1);
  while (!body.empty() && (body.back() == '\n' || body.back() == '\r')) body.pop_back();
  return body;
}

}  // namespace

struct DocumentSigner::Keys {
  Pkey key;
  Cert certificate;
  Pkey pkcs7_key;
  Cert pkcs7_certificate;
};

size_t DocumentSigner::DigestHash::operator()(const Digest& d) const {
  size_t h = 0;
  std::memcpy(&h, d.data(), sizeof(h));  // a cryptographic digest is already uniform
  return h;
}

DocumentSigner::DocumentSigner(std::unique_ptr<Keys> keys, size_t max_cached)
    : keys_(std::move(keys)), max_cached_(max_cached == 0 ? 1 : max_cached) {}

DocumentSigner::~DocumentSigner() = default;

Result<std::unique_ptr<DocumentSigner>> DocumentSigner::Create(const Options& options) {
  auto keys = std::make_unique<Keys>();
  auto key = ParseKey(options.key_pem, "identity signing key");
  if (!key.ok()) return key.status();
  auto cert = ParseCertificate(options.certificate_pem, "identity signing certificate");
  if (!cert.ok()) return cert.status();
  if (EVP_PKEY_is_a(key->get(), "RSA") != 1) {
    return common::InvalidArgument("identity signing key must be RSA (signature, rsa2048)");
  }
  if (EVP_PKEY_get_bits(key->get()) < 2048) {
    return common::InvalidArgument("identity signing key has " +
                                   std::to_string(EVP_PKEY_get_bits(key->get())) +
                                   " bits; rsa2048 needs at least 2048");
  }
  if (Status s = CheckPair(cert->get(), key->get(), "identity signing key"); !s.ok()) return s;
  keys->key = std::move(*key);
  keys->certificate = std::move(*cert);

  if (options.pkcs7_key_pem.empty() != options.pkcs7_certificate_pem.empty()) {
    return common::InvalidArgument("the pkcs7 signing key and certificate go together");
  }
  if (!options.pkcs7_key_pem.empty()) {
    auto pkey = ParseKey(options.pkcs7_key_pem, "pkcs7 signing key");
    if (!pkey.ok()) return pkey.status();
    auto pcert = ParseCertificate(options.pkcs7_certificate_pem, "pkcs7 signing certificate");
    if (!pcert.ok()) return pcert.status();
    if (EVP_PKEY_is_a(pkey->get(), "RSA") != 1 && EVP_PKEY_is_a(pkey->get(), "DSA") != 1 &&
        EVP_PKEY_is_a(pkey->get(), "EC") != 1) {
      return common::InvalidArgument("pkcs7 signing key must be RSA, DSA or EC");
    }
    if (Status s = CheckPair(pcert->get(), pkey->get(), "pkcs7 signing key"); !s.ok()) return s;
    keys->pkcs7_key = std::move(*pkey);
    keys->pkcs7_certificate = std::move(*pcert);
  }
  return std::unique_ptr<DocumentSigner>(
      new DocumentSigner(std::move(keys), options.max_cached_documents));
}

Result<std::string> DocumentSigner::Sign(DocumentFormat format, std::string_view document) const {
  if (format == DocumentFormat::kSignature) {
    MdCtx ctx(EVP_MD_CTX_new());
    size_t len = 0;
    if (!ctx ||
        EVP_DigestSignInit_ex(ctx.get(), nullptr, "SHA256", nullptr, nullptr, keys_->key.get(),
                              nullptr) != 1 ||
        EVP_DigestSign(ctx.get(), nullptr, &len,
                       reinterpret_cast<const unsigned char*>(document.data()),
                       document.size()) != 1) {
      ClearErrors();
      return common::Internal("identity document signature failed");
    }
    std::string sig(len, '\0');
    if (EVP_DigestSign(ctx.get(), reinterpret_cast<unsigned char*>(sig.data()), &len,
                       reinterpret_cast<const unsigned char*>(document.data()),
                       document.size()) != 1) {
      ClearErrors();
      return common::Internal("identity document signature failed");
    }
    sig.resize(len);
    return common::Base64EncodeWrapped(sig, kSignatureLineWidth);
  }

  const bool pkcs7 = format == DocumentFormat::kPkcs7 && keys_->pkcs7_key;
  EVP_PKEY* key = pkcs7 ? keys_->pkcs7_key.get() : keys_->key.get();
  X509* cert = pkcs7 ? keys_->pkcs7_certificate.get() : keys_->certificate.get();
  // Attached content (no CMS_DETACHED), bytes as they are (CMS_BINARY: no
  // MIME CRLF canonicalisation, so the signature covers exactly what the
  // guest downloads), no certificates inside (the verifier supplies the
  // operator's with -certfile, as with AWS's), no S/MIME capabilities.
  constexpr unsigned kFlags = CMS_BINARY | CMS_NOCERTS | CMS_NOSMIMECAP | CMS_PARTIAL;
  Bio in = MemoryBio(document);
  Cms cms(in ? CMS_sign(nullptr, nullptr, nullptr, nullptr, kFlags) : nullptr);
  Bio out(BIO_new(BIO_s_mem()));
  if (!cms || !out || CMS_add1_signer(cms.get(), cert, key, EVP_sha256(), kFlags) == nullptr ||
      CMS_final(cms.get(), in.get(), nullptr, kFlags) != 1 ||
      PEM_write_bio_CMS(out.get(), cms.get()) != 1) {
    ClearErrors();
    return common::Internal("identity document CMS signature failed");
  }
  std::string body = PemBody(BioText(out.get()));
  if (body.empty()) return common::Internal("identity document CMS signature: bad PEM");
  return body;
}

Status DocumentSigner::Append(DocumentFormat format, std::string_view document,
                              std::string& out) const {
  Digest digest{};
  unsigned int digest_len = 0;
  if (EVP_Digest(document.data(), document.size(), digest.data(), &digest_len, EVP_sha256(),
                 nullptr) != 1 ||
      digest_len != digest.size()) {
    ClearErrors();
    return common::Internal("identity document digest failed");
  }
  const auto slot = static_cast<size_t>(format);
  {
    std::lock_guard lock(mu_);
    auto it = cache_.find(digest);
    if (it != cache_.end() && it->second.artifact[slot].has_value()) {
      out += *it->second.artifact[slot];
      return Status::Ok();
    }
  }
  // Signed outside the lock: two threads may sign the same new document at
  // once; both results verify, and the first stored is the one kept.
  auto artifact = Sign(format, document);
  if (!artifact.ok()) return artifact.status();
  std::lock_guard lock(mu_);
  ++signings_;
  if (cache_.size() >= max_cached_ && cache_.find(digest) == cache_.end()) cache_.clear();
  std::optional<std::string>& stored = cache_[digest].artifact[slot];
  if (!stored.has_value()) stored = std::move(*artifact);
  out += *stored;
  return Status::Ok();
}

uint64_t DocumentSigner::signings() const {
  std::lock_guard lock(mu_);
  return signings_;
}

Result<SigningIdentity> GenerateSigningIdentity(const SigningIdentityOptions& options) {
  if (options.bits < 2048) return common::InvalidArgument("keys need at least 2048 bits");
  if (options.days < 1) return common::InvalidArgument("certificate lifetime must be >= 1 day");
  Pkey key;
  if (options.algorithm == SigningIdentityOptions::Algorithm::kRsa) {
    key.reset(EVP_PKEY_Q_keygen(nullptr, nullptr, "RSA", static_cast<size_t>(options.bits)));
  } else {
    // DSA needs domain parameters first (slow: seconds for 2048 bits).
    PkeyCtx pctx(EVP_PKEY_CTX_new_from_name(nullptr, "DSA", nullptr));
    EVP_PKEY* params = nullptr;
    if (pctx && EVP_PKEY_paramgen_init(pctx.get()) == 1 &&
        EVP_PKEY_CTX_set_dsa_paramgen_bits(pctx.get(), options.bits) == 1 &&
        EVP_PKEY_paramgen(pctx.get(), &params) == 1) {
      Pkey param_key(params);
      PkeyCtx kctx(EVP_PKEY_CTX_new_from_pkey(nullptr, param_key.get(), nullptr));
      EVP_PKEY* generated = nullptr;
      if (kctx && EVP_PKEY_keygen_init(kctx.get()) == 1 &&
          EVP_PKEY_keygen(kctx.get(), &generated) == 1) {
        key.reset(generated);
      }
    }
  }
  if (!key) {
    ClearErrors();
    return common::Internal("key generation failed");
  }

  Cert cert(X509_new());
  bool ok = cert != nullptr && X509_set_version(cert.get(), X509_VERSION_3) == 1;
  // A random positive 64-bit serial: certificates from two keygen runs never clash.
  unsigned char serial_bytes[8];
  ok = ok && RAND_bytes(serial_bytes, sizeof(serial_bytes)) == 1;
  if (ok) {
    serial_bytes[0] &= 0x7f;
    BIGNUM* bn = BN_bin2bn(serial_bytes, sizeof(serial_bytes), nullptr);
    ok = bn != nullptr && BN_to_ASN1_INTEGER(bn, X509_get_serialNumber(cert.get())) != nullptr;
    BN_free(bn);
  }
  ok = ok && X509_gmtime_adj(X509_getm_notBefore(cert.get()), 0) != nullptr &&
       X509_gmtime_adj(X509_getm_notAfter(cert.get()), 86400L * options.days) != nullptr &&
       X509_set_pubkey(cert.get(), key.get()) == 1;
  if (ok) {
    X509_NAME* name = X509_get_subject_name(cert.get());
    ok = X509_NAME_add_entry_by_txt(
             name, "CN", MBSTRING_UTF8,
             reinterpret_cast<const unsigned char*>(options.common_name.c_str()), -1, -1, 0) == 1 &&
         X509_set_issuer_name(cert.get(), name) == 1 &&
         X509_sign(cert.get(), key.get(), EVP_sha256()) > 0;
  }
  if (!ok) {
    ClearErrors();
    return common::Internal("self-signed certificate failed");
  }
  Bio key_out(BIO_new(BIO_s_mem()));
  Bio cert_out(BIO_new(BIO_s_mem()));
  if (!key_out || !cert_out ||
      PEM_write_bio_PrivateKey(key_out.get(), key.get(), nullptr, nullptr, 0, nullptr, nullptr) !=
          1 ||
      PEM_write_bio_X509(cert_out.get(), cert.get()) != 1) {
    ClearErrors();
    return common::Internal("writing PEM failed");
  }
  SigningIdentity out;
  out.key_pem = BioText(key_out.get());
  out.certificate_pem = BioText(cert_out.get());
  return out;
}

}  // namespace openimds::auth
