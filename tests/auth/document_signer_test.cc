#include "auth/document_signer.h"

#include <gtest/gtest.h>
#include <openssl/bio.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509.h>
// After pem.h (its PEM declarations use pem.h's macros).
#include <openssl/cms.h>

#include <string>
#include <thread>
#include <vector>

#include "common/encoding.h"

namespace openimds::auth {
namespace {

constexpr std::string_view kDocument =
    "{\n  \"accountId\" : \"123456789012\",\n  \"instanceId\" : \"i-0123456789abcdef0\",\n"
    "  \"region\" : \"us-east-1\"\n}";

// One RSA identity for the whole suite: key generation is the slow part.
const SigningIdentity& Rsa() {
  static const SigningIdentity id = [] {
    auto r = GenerateSigningIdentity({});
    EXPECT_TRUE(r.ok()) << r.status().ToString();
    return *r;
  }();
  return id;
}

std::unique_ptr<DocumentSigner> MakeSigner(const SigningIdentity& id,
                                           const SigningIdentity* pkcs7 = nullptr) {
  DocumentSigner::Options o;
  o.key_pem = id.key_pem;
  o.certificate_pem = id.certificate_pem;
  if (pkcs7 != nullptr) {
    o.pkcs7_key_pem = pkcs7->key_pem;
    o.pkcs7_certificate_pem = pkcs7->certificate_pem;
  }
  auto s = DocumentSigner::Create(o);
  EXPECT_TRUE(s.ok()) << s.status().ToString();
  return s.ok() ? std::move(*s) : nullptr;
}

X509* ReadCert(const std::string& pem) {
  BIO* bio = BIO_new_mem_buf(pem.data(), static_cast<int>(pem.size()));
  X509* x = PEM_read_bio_X509(bio, nullptr, nullptr, nullptr);
  BIO_free(bio);
  return x;
}

// What `openssl dgst -sha256 -verify key -signature sig document` checks.
bool VerifySignature(const std::string& b64, std::string_view document, const std::string& cert) {
  auto raw = common::Base64Decode(b64);
  if (!raw) return false;
  X509* x = ReadCert(cert);
  EVP_PKEY* pub = X509_get_pubkey(x);
  EVP_MD_CTX* ctx = EVP_MD_CTX_new();
  const bool ok =
      EVP_DigestVerifyInit_ex(ctx, nullptr, "SHA256", nullptr, nullptr, pub, nullptr) == 1 &&
      EVP_DigestVerify(ctx, reinterpret_cast<const unsigned char*>(raw->data()), raw->size(),
                       reinterpret_cast<const unsigned char*>(document.data()),
                       document.size()) == 1;
  EVP_MD_CTX_free(ctx);
  EVP_PKEY_free(pub);
  X509_free(x);
  return ok;
}

// What `openssl smime -verify -in p7 -inform PEM -certfile cert -noverify`
// checks; returns the embedded content, or nullopt when verification fails.
std::optional<std::string> VerifyCms(const std::string& body, const std::string& cert) {
  const std::string pem = "-----BEGIN PKCS7-----\n" + body + "\n-----END PKCS7-----\n";
  BIO* in = BIO_new_mem_buf(pem.data(), static_cast<int>(pem.size()));
  CMS_ContentInfo* cms = PEM_read_bio_CMS(in, nullptr, nullptr, nullptr);
  BIO_free(in);
  if (cms == nullptr) return std::nullopt;
  X509* x = ReadCert(cert);
  STACK_OF(X509)* certs = sk_X509_new_null();
  sk_X509_push(certs, x);
  BIO* out = BIO_new(BIO_s_mem());
  std::optional<std::string> content;
  if (CMS_verify(cms, certs, nullptr, nullptr, out, CMS_NO_SIGNER_CERT_VERIFY | CMS_BINARY) == 1) {
    char* data = nullptr;
    const long n = BIO_get_mem_data(out, &data);
    content = std::string(data, static_cast<size_t>(n));
  }
  BIO_free(out);
  sk_X509_pop_free(certs, X509_free);
  CMS_ContentInfo_free(cms);
  return content;
}

TEST(DocumentSignerTest, SignatureVerifiesAndIsWrappedAt76) {
  auto signer = MakeSigner(Rsa());
  ASSERT_NE(signer, nullptr);
  std::string sig;
  ASSERT_TRUE(signer->Append(DocumentFormat::kSignature, kDocument, sig).ok());
  EXPECT_TRUE(VerifySignature(sig, kDocument, Rsa().certificate_pem));
  // 256 bytes -> 344 base64 characters in lines of 76, no final newline.
  EXPECT_EQ(sig.size(), 344u + 344u / 76u);
  EXPECT_EQ(sig.find('\n'), 76u);
  EXPECT_NE(sig.back(), '\n');
  // One byte changed in the document: the signature no longer matches.
  std::string altered(kDocument);
  altered[5] ^= 1;
  EXPECT_FALSE(VerifySignature(sig, altered, Rsa().certificate_pem));
}

TEST(DocumentSignerTest, CmsFormsCarryTheDocumentAndVerify) {
  auto signer = MakeSigner(Rsa());
  ASSERT_NE(signer, nullptr);
  for (DocumentFormat f : {DocumentFormat::kPkcs7, DocumentFormat::kRsa2048}) {
    std::string body;
    ASSERT_TRUE(signer->Append(f, kDocument, body).ok());
    EXPECT_EQ(body.find("-----"), std::string::npos) << "armour must be stripped";
    EXPECT_NE(body.back(), '\n');
    auto content = VerifyCms(body, Rsa().certificate_pem);
    ASSERT_TRUE(content.has_value());
    EXPECT_EQ(*content, kDocument);  // attached, byte for byte (no CRLF translation)
  }
}

TEST(DocumentSignerTest, AnotherCertificateDoesNotVerify) {
  auto signer = MakeSigner(Rsa());
  ASSERT_NE(signer, nullptr);
  auto other = GenerateSigningIdentity({});
  ASSERT_TRUE(other.ok());
  std::string sig, p7;
  ASSERT_TRUE(signer->Append(DocumentFormat::kSignature, kDocument, sig).ok());
  ASSERT_TRUE(signer->Append(DocumentFormat::kRsa2048, kDocument, p7).ok());
  EXPECT_FALSE(VerifySignature(sig, kDocument, other->certificate_pem));
  EXPECT_FALSE(VerifyCms(p7, other->certificate_pem).has_value());
}

TEST(DocumentSignerTest, SignsOncePerDistinctDocumentAndFormat) {
  auto signer = MakeSigner(Rsa());
  ASSERT_NE(signer, nullptr);
  std::string a, b;
  ASSERT_TRUE(signer->Append(DocumentFormat::kPkcs7, kDocument, a).ok());
  ASSERT_TRUE(signer->Append(DocumentFormat::kPkcs7, kDocument, b).ok());
  EXPECT_EQ(a, b);  // the cached artifact, not a new signature (signing time differs)
  EXPECT_EQ(signer->signings(), 1u);
  std::string s1, s2;
  ASSERT_TRUE(signer->Append(DocumentFormat::kSignature, kDocument, s1).ok());
  EXPECT_EQ(signer->signings(), 2u);
  const std::string changed = std::string(kDocument) + " ";
  ASSERT_TRUE(signer->Append(DocumentFormat::kSignature, changed, s2).ok());
  EXPECT_EQ(signer->signings(), 3u);
  EXPECT_NE(s1, s2);
  // Append appends.
  std::string out = "x";
  ASSERT_TRUE(signer->Append(DocumentFormat::kSignature, kDocument, out).ok());
  EXPECT_EQ(out, "x" + s1);
  EXPECT_EQ(signer->signings(), 3u);
}

TEST(DocumentSignerTest, CacheStartsOverWhenFull) {
  DocumentSigner::Options o;
  o.key_pem = Rsa().key_pem;
  o.certificate_pem = Rsa().certificate_pem;
  o.max_cached_documents = 2;
  auto signer = DocumentSigner::Create(o);
  ASSERT_TRUE(signer.ok());
  std::string out;
  for (const char* doc : {"a", "b", "c", "a"}) {
    ASSERT_TRUE((*signer)->Append(DocumentFormat::kSignature, doc, out).ok());
  }
  EXPECT_EQ((*signer)->signings(), 4u);  // "a" was dropped when "c" came in
}

TEST(DocumentSignerTest, SeparatePkcs7KeyIsUsedForPkcs7Only) {
  SigningIdentityOptions dsa;
  dsa.algorithm = SigningIdentityOptions::Algorithm::kDsa;
  auto pkcs7 = GenerateSigningIdentity(dsa);
  ASSERT_TRUE(pkcs7.ok()) << pkcs7.status().ToString();
  EXPECT_NE(pkcs7->key_pem.find("BEGIN PRIVATE KEY"), std::string::npos);
  auto signer = MakeSigner(Rsa(), &*pkcs7);
  ASSERT_NE(signer, nullptr);
  std::string p7, rsa2048;
  ASSERT_TRUE(signer->Append(DocumentFormat::kPkcs7, kDocument, p7).ok());
  ASSERT_TRUE(signer->Append(DocumentFormat::kRsa2048, kDocument, rsa2048).ok());
  EXPECT_EQ(VerifyCms(p7, pkcs7->certificate_pem), std::string(kDocument));
  EXPECT_FALSE(VerifyCms(p7, Rsa().certificate_pem).has_value());
  EXPECT_EQ(VerifyCms(rsa2048, Rsa().certificate_pem), std::string(kDocument));
}

TEST(DocumentSignerTest, CreateRefusesBadInput) {
  auto other = GenerateSigningIdentity({});
  ASSERT_TRUE(other.ok());
  EVP_PKEY* small = EVP_PKEY_Q_keygen(nullptr, nullptr, "RSA", size_t{1024});
  BIO* bio = BIO_new(BIO_s_mem());
  PEM_write_bio_PrivateKey(bio, small, nullptr, nullptr, 0, nullptr, nullptr);
  char* data = nullptr;
  const std::string small_pem(data, static_cast<size_t>(BIO_get_mem_data(bio, &data)));
  BIO_free(bio);
  EVP_PKEY_free(small);
  EVP_PKEY* ec = EVP_PKEY_Q_keygen(nullptr, nullptr, "EC", "P-256");
  bio = BIO_new(BIO_s_mem());
  PEM_write_bio_PrivateKey(bio, ec, nullptr, nullptr, 0, nullptr, nullptr);
  const std::string ec_pem(data, static_cast<size_t>(BIO_get_mem_data(bio, &data)));
  BIO_free(bio);
  EVP_PKEY_free(ec);

  struct Case {
    std::string name, key, cert, p7key, p7cert, message;
  };
  const std::string& k = Rsa().key_pem;
  const std::string& c = Rsa().certificate_pem;
  const std::vector<Case> cases = {
      {"garbage key", "not a key", c, "", "", "identity signing key is not a PEM private key"},
      {"garbage cert", k, "nope", "", "", "identity signing certificate is not a PEM certificate"},
      {"mismatch", k, other->certificate_pem, "", "", "does not belong to the key"},
      {"small key", small_pem, c, "", "", "rsa2048 needs at least 2048"},
      {"ec main key", ec_pem, c, "", "", "must be RSA"},
      {"pkcs7 key alone", k, c, k, "", "go together"},
      {"pkcs7 mismatch", k, c, k, other->certificate_pem, "pkcs7 signing key"},
  };
  for (const auto& t : cases) {
    DocumentSigner::Options o;
    o.key_pem = t.key;
    o.certificate_pem = t.cert;
    o.pkcs7_key_pem = t.p7key;
    o.pkcs7_certificate_pem = t.p7cert;
    auto s = DocumentSigner::Create(o);
    ASSERT_FALSE(s.ok()) << t.name;
    EXPECT_EQ(s.status().code(), common::Code::kInvalidArgument) << t.name;
    EXPECT_NE(s.status().message().find(t.message), std::string::npos)
        << t.name << ": " << s.status().message();
    EXPECT_EQ(s.status().message().find("PRIVATE KEY"), std::string::npos) << "no key material";
  }
}

TEST(DocumentSignerTest, GenerateRefusesWeakParameters) {
  SigningIdentityOptions o;
  o.bits = 1024;
  EXPECT_EQ(GenerateSigningIdentity(o).status().code(), common::Code::kInvalidArgument);
  o = {};
  o.days = 0;
  EXPECT_EQ(GenerateSigningIdentity(o).status().code(), common::Code::kInvalidArgument);
}

TEST(DocumentSignerTest, ConcurrentCallersAllGetVerifyingArtifacts) {
  auto signer = MakeSigner(Rsa());
  ASSERT_NE(signer, nullptr);
  std::vector<std::string> sigs(8);
  std::vector<std::thread> threads;
  for (size_t i = 0; i < sigs.size(); ++i) {
    threads.emplace_back([&, i] {
      const std::string doc = i % 2 == 0 ? std::string(kDocument) : "other";
      for (int n = 0; n < 20; ++n) {
        std::string s;
        EXPECT_TRUE(signer->Append(DocumentFormat::kRsa2048, doc, s).ok());
        if (n == 0) sigs[i] = s;
      }
    });
  }
  for (auto& t : threads) t.join();
  for (size_t i = 0; i < sigs.size(); ++i) {
    const std::string doc = i % 2 == 0 ? std::string(kDocument) : "other";
    EXPECT_EQ(VerifyCms(sigs[i], Rsa().certificate_pem), doc);
  }
  EXPECT_LE(signer->signings(), sigs.size());
}

}  // namespace
}  // namespace openimds::auth
