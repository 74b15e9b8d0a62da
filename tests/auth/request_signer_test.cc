#include "auth/request_signer.h"

#include <gtest/gtest.h>

#include <openssl/evp.h>
#include <openssl/hmac.h>

#include <chrono>
#include <cstdint>
#include <limits>
#include <optional>
#include <string>
#include <vector>

#include "common/clock.h"

namespace openimds::auth {
namespace {

using std::chrono::seconds;
using std::chrono::system_clock;

constexpr int64_t kNow = 1'700'000'000;
constexpr std::string_view kSecretA = "0123456789abcdef-secret";
constexpr std::string_view kSecretB = "another-secret-0123456789";

class RequestSignerTest : public ::testing::Test {
 protected:
  common::FakeClock clock_{system_clock::time_point(seconds(kNow))};

  RequestSigner Make(std::vector<SigningKey> keys, seconds window = seconds(30)) {
    RequestSigner::Options o;
    o.replay_window = window;
    auto s = RequestSigner::Create(std::move(keys), o, clock_);
    EXPECT_TRUE(s.ok()) << s.status().ToString();
    return std::move(s).value();
  }

  // nullopt when accepted, else the reason.
  static std::optional<SignatureError> Check(const RequestSigner& v, const SignedIdentity& id,
                                             std::string_view method = "GET",
                                             std::string_view target = "/latest/meta-data/",
                                             std::string_view network = "tenant-a",
                                             std::string_view source = "10.0.0.5") {
    SignatureError why = SignatureError::kMalformed;
    common::Status s = v.Verify(method, target, network, source, id.key_id,
                                std::to_string(id.timestamp), id.signature, &why);
    if (s.ok()) return std::nullopt;
    EXPECT_EQ(s.code(), common::Code::kPermissionDenied);
    EXPECT_EQ(s.message().find(kSecretA), std::string::npos) << "secret leaked into message";
    return why;
  }
};

TEST_F(RequestSignerTest, SignatureIsHmacSha256OfTheDocumentedMessage) {
  // Expected value computed independently with Python's hmac module over
  // "openimds-identity-v1\nGET\n/latest/meta-data/instance-id\ntenant-a\n10.0.0.5\n1700000000".
  RequestSigner s = Make({{"k1", std::string(kSecretA)}});
  SignedIdentity id = s.Sign("GET", "/latest/meta-data/instance-id", "tenant-a", "10.0.0.5");
  EXPECT_EQ(id.key_id, "k1");
  EXPECT_EQ(id.timestamp, kNow);
  EXPECT_EQ(id.signature, "fa3f3e187be7c4c2ce289a7e4ca2a0ccff1fca7167788d9f8f33e05fef168f7d");
  EXPECT_EQ(RequestSigner::CanonicalMessage("GET", "/x", "n", "1.2.3.4", 5),
            "openimds-identity-v1\nGET\n/x\nn\n1.2.3.4\n5");
}

TEST_F(RequestSignerTest, PrecomputedHmacMatchesPythonAcrossTheKeyBlockBoundary) {
  // The MAC is computed from SHA-256 states pre-keyed once per key; keys
  // shorter than, equal to and longer than the 64-byte block (hashed first)
  // must all give RFC 2104 HMAC. Expected values from Python's hmac module
  // over the same message as above; key i-th char = hex((i*7+3)%256)[..n].
  std::string hex;
  for (int i = 0; i < 200; ++i) {
    static constexpr char kHex[] = "0123456789abcdef";
    const int b = (i * 7 + 3) % 256;
    hex += kHex[b >> 4];
    hex += kHex[b & 15];
  }
  const struct {
    size_t length;
    const char* mac;
  } cases[] = {
      {63, "ee632006b91e1357af92540c3b1e636912cbe6200a42c7ae89f11c04270c1f4e"},
      {64, "bb6e9cf17457b2e23ca290ab6a34ed5845a016662bb776aecf8573781a0e4b8d"},
      {65, "8c06f5093f27a8c21d41c4f7b3f6a5ef7b87b4b04667b0aac213d5608e164a4f"},
      {200, "a8c58e934cdd3ce22aab3a7c8d1e92d8ccdb3d7bbfabc9ac231384ad0a0038fa"},
  };
  for (const auto& c : cases) {
    RequestSigner s = Make({{"k", hex.substr(0, c.length)}});
    SignedIdentity id = s.Sign("GET", "/latest/meta-data/instance-id", "tenant-a", "10.0.0.5");
    EXPECT_EQ(id.signature, c.mac) << "key length " << c.length;
    EXPECT_EQ(Check(s, id, "GET", "/latest/meta-data/instance-id"), std::nullopt);
  }
}

TEST_F(RequestSignerTest, AcceptsItsOwnSignature) {
  RequestSigner s = Make({{"k1", std::string(kSecretA)}});
  EXPECT_EQ(Check(s, s.Sign("GET", "/latest/meta-data/", "tenant-a", "10.0.0.5")), std::nullopt);
}

TEST_F(RequestSignerTest, EverySignedFieldIsBound) {
  RequestSigner s = Make({{"k1", std::string(kSecretA)}});
  SignedIdentity id = s.Sign("GET", "/latest/meta-data/", "tenant-a", "10.0.0.5");
  struct Case {
    const char* what;
    std::string_view method, target, network, source;
  } cases[] = {
      {"method", "PUT", "/latest/meta-data/", "tenant-a", "10.0.0.5"},
      {"target", "GET", "/latest/user-data", "tenant-a", "10.0.0.5"},
      {"query", "GET", "/latest/meta-data/?x=1", "tenant-a", "10.0.0.5"},
      {"network", "GET", "/latest/meta-data/", "tenant-b", "10.0.0.5"},
      {"source", "GET", "/latest/meta-data/", "tenant-a", "10.0.0.6"},
  };
  for (const auto& c : cases) {
    EXPECT_EQ(Check(s, id, c.method, c.target, c.network, c.source), SignatureError::kBadSignature)
        << c.what;
  }
  SignedIdentity moved = id;
  moved.timestamp += 1;  // a different timestamp is a different message
  EXPECT_EQ(Check(s, moved), SignatureError::kBadSignature);
}

TEST_F(RequestSignerTest, ReplayWindowBothSides) {
  RequestSigner s = Make({{"k1", std::string(kSecretA)}}, seconds(30));
  SignedIdentity id = s.Sign("GET", "/latest/meta-data/", "tenant-a", "10.0.0.5");
  clock_.Advance(seconds(30));
  EXPECT_EQ(Check(s, id), std::nullopt) << "exactly at the window's edge";
  clock_.Advance(seconds(1));
  EXPECT_EQ(Check(s, id), SignatureError::kStale);
  // A timestamp from the future (signer's clock ahead) is as stale.
  clock_.Set(system_clock::time_point(seconds(kNow - 31)));
  EXPECT_EQ(Check(s, id), SignatureError::kStale);
  clock_.Set(system_clock::time_point(seconds(kNow - 29)));
  EXPECT_EQ(Check(s, id), std::nullopt);
}

// Hex HMAC-SHA256, computed here with OpenSSL, so a test can sign a
// timestamp no clock reaches.
std::string HexHmacSha256(std::string_view key, std::string_view message) {
  unsigned char mac[EVP_MAX_MD_SIZE];
  unsigned int length = 0;
  HMAC(EVP_sha256(), key.data(), static_cast<int>(key.size()),
       reinterpret_cast<const unsigned char*>(message.data()), message.size(), mac, &length);
  static constexpr char kHex[] = "0123456789abcdef";
  std::string out;
  for (unsigned int i = 0; i < length; ++i) {
    out += kHex[mac[i] >> 4];
    out += kHex[mac[i] & 15];
  }
  return out;
}

TEST_F(RequestSignerTest, AuthenticTimestampsAtTheEndsOfTheRangeAreStale) {
  // |now - ts| once overflowed for INT64_MIN, so that signature never expired.
  RequestSigner s = Make({{"k1", std::string(kSecretA)}}, seconds(30));
  SignedIdentity id = s.Sign("GET", "/latest/meta-data/", "tenant-a", "10.0.0.5");
  ASSERT_EQ(id.signature, HexHmacSha256(kSecretA, RequestSigner::CanonicalMessage(
                                                      "GET", "/latest/meta-data/", "tenant-a",
                                                      "10.0.0.5", id.timestamp)));
  for (int64_t ts : {std::numeric_limits<int64_t>::min(), std::numeric_limits<int64_t>::min() + 1,
                     std::numeric_limits<int64_t>::max(), int64_t{0}, int64_t{-1}, kNow - 31,
                     kNow + 31}) {
    id.timestamp = ts;
    id.signature = HexHmacSha256(kSecretA, RequestSigner::CanonicalMessage(
                                               "GET", "/latest/meta-data/", "tenant-a",
                                               "10.0.0.5", ts));
    EXPECT_EQ(Check(s, id), SignatureError::kStale) << ts;
  }
  id.timestamp = kNow - 30;
  id.signature = HexHmacSha256(kSecretA, RequestSigner::CanonicalMessage(
                                             "GET", "/latest/meta-data/", "tenant-a", "10.0.0.5",
                                             id.timestamp));
  EXPECT_EQ(Check(s, id), std::nullopt);
}

TEST_F(RequestSignerTest, RotationAcceptsEveryConfiguredKeySignsWithFirst) {
  RequestSigner old_signer = Make({{"2025", std::string(kSecretA)}});
  RequestSigner new_signer = Make({{"2026", std::string(kSecretB)}});
  RequestSigner verifier = Make({{"2026", std::string(kSecretB)}, {"2025", std::string(kSecretA)}});
  EXPECT_EQ(verifier.signing_key_id(), "2026");
  EXPECT_EQ(Check(verifier, old_signer.Sign("GET", "/latest/meta-data/", "tenant-a", "10.0.0.5")),
            std::nullopt);
  EXPECT_EQ(Check(verifier, new_signer.Sign("GET", "/latest/meta-data/", "tenant-a", "10.0.0.5")),
            std::nullopt);
  // After the old key is dropped, its signatures are refused as unknown.
  RequestSigner rotated = Make({{"2026", std::string(kSecretB)}});
  EXPECT_EQ(Check(rotated, old_signer.Sign("GET", "/latest/meta-data/", "tenant-a", "10.0.0.5")),
            SignatureError::kUnknownKey);
}

TEST_F(RequestSignerTest, SameKeyIdDifferentSecretIsABadSignature) {
  RequestSigner a = Make({{"k1", std::string(kSecretA)}});
  RequestSigner b = Make({{"k1", std::string(kSecretB)}});
  EXPECT_EQ(Check(b, a.Sign("GET", "/latest/meta-data/", "tenant-a", "10.0.0.5")),
            SignatureError::kBadSignature);
}

TEST_F(RequestSignerTest, MalformedFieldsAreRefused) {
  RequestSigner s = Make({{"k1", std::string(kSecretA)}});
  SignedIdentity good = s.Sign("GET", "/p", "tenant-a", "10.0.0.5");
  auto verify = [&](std::string_view kid, std::string_view ts, std::string_view sig,
                    std::string_view network = "tenant-a") {
    SignatureError why = SignatureError::kStale;
    common::Status st = s.Verify("GET", "/p", network, "10.0.0.5", kid, ts, sig, &why);
    EXPECT_FALSE(st.ok());
    return why;
  };
  const std::string ts = std::to_string(good.timestamp);
  std::string upper = good.signature;
  for (char& c : upper) c = static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
  EXPECT_EQ(verify("k1", "", good.signature), SignatureError::kMalformed);
  EXPECT_EQ(verify("k1", "17e8", good.signature), SignatureError::kMalformed);
  EXPECT_EQ(verify("k1", ts, good.signature.substr(1)), SignatureError::kMalformed);
  EXPECT_EQ(verify("k1", ts, good.signature + "0"), SignatureError::kMalformed);
  EXPECT_EQ(verify("k1", ts, upper), SignatureError::kMalformed);
  EXPECT_EQ(verify("", ts, good.signature), SignatureError::kMalformed);
  EXPECT_EQ(verify("k1", ts, good.signature, ""), SignatureError::kMalformed);
  EXPECT_EQ(verify("k9", ts, good.signature), SignatureError::kUnknownKey);
}

TEST_F(RequestSignerTest, CreateRefusesBadKeys) {
  RequestSigner::Options o;
  EXPECT_FALSE(RequestSigner::Create({}, o, clock_).ok());
  EXPECT_FALSE(RequestSigner::Create({{"k1", "short"}}, o, clock_).ok());
  EXPECT_FALSE(RequestSigner::Create({{"bad id", std::string(kSecretA)}}, o, clock_).ok());
  EXPECT_FALSE(RequestSigner::Create({{"k1", std::string(kSecretA)}, {"k1", std::string(kSecretB)}},
                                     o, clock_)
                   .ok());
  o.replay_window = seconds(0);
  EXPECT_FALSE(RequestSigner::Create({{"k1", std::string(kSecretA)}}, o, clock_).ok());
}

TEST(ParseSigningKeysTest, ParsesLinesCommentsAndOrder) {
  auto keys = ParseSigningKeys(
      "# rotated 2026-11\n\n  2026  0123456789abcdef-new \r\n2025\t0123456789abcdef-old\n");
  ASSERT_TRUE(keys.ok()) << keys.status().ToString();
  ASSERT_EQ(keys->size(), 2u);
  EXPECT_EQ((*keys)[0].id, "2026");
  EXPECT_EQ((*keys)[0].secret, "0123456789abcdef-new");
  EXPECT_EQ((*keys)[1].id, "2025");
  EXPECT_EQ((*keys)[1].secret, "0123456789abcdef-old");
}

TEST(ParseSigningKeysTest, RefusesBadFilesWithoutEchoingSecrets) {
  const char* bad[] = {
      "",                                                // no key
      "# only a comment\n",                              // no key
      "k1\n",                                            // no secret
      "k1 short\n",                                      // short secret
      "k/1 0123456789abcdef-x\n",                        // bad id
      "k1 0123456789abcdef-x\nk1 0123456789abcdef-y\n",  // duplicate id
      "k1 0123456789abcdef x\n",                         // blank inside the secret
  };
  for (const char* text : bad) {
    auto keys = ParseSigningKeys(text);
    ASSERT_FALSE(keys.ok()) << text;
    EXPECT_EQ(keys.status().code(), common::Code::kInvalidArgument);
    EXPECT_EQ(keys.status().message().find("0123456789abcdef"), std::string::npos)
        << keys.status().message();
  }
}

TEST(NeutronSignatureTest, MatchesNeutronsSignInstanceId) {
  // RFC 4231 test case 2 (HMAC-SHA256, key "Jefe"), which is what
  // neutron's sign_instance_id computes for that secret and message.
  EXPECT_EQ(NeutronInstanceSignature("Jefe", "what do ya want for nothing?"),
            "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843");
  // And a realistic instance UUID, computed with Python's hmac module.
  EXPECT_EQ(
      NeutronInstanceSignature("neutron-shared-secret", "6f0c7e9e-8d5c-4f36-9a3e-3f1f2c0f6b21"),
      "09d120f3f18bc1e5dffe2597f61535a11b66ca7c63810d53199a7cf038936ffb");
}

TEST(NeutronSignatureTest, VerifyAcceptsOnlyTheExactLowercaseHex) {
  const std::string secret = "neutron-shared-secret";
  const std::string id = "6f0c7e9e-8d5c-4f36-9a3e-3f1f2c0f6b21";
  const std::string sig = NeutronInstanceSignature(secret, id);
  EXPECT_TRUE(VerifyNeutronInstanceSignature(secret, id, sig));
  EXPECT_FALSE(VerifyNeutronInstanceSignature(secret, id, ""));
  EXPECT_FALSE(VerifyNeutronInstanceSignature(secret, id, sig.substr(0, 63)));
  EXPECT_FALSE(VerifyNeutronInstanceSignature(secret, id, sig + "0"));
  EXPECT_FALSE(VerifyNeutronInstanceSignature("other-secret", id, sig));
  EXPECT_FALSE(VerifyNeutronInstanceSignature(secret, id + "x", sig));
  std::string flipped = sig;
  flipped[63] = flipped[63] == '0' ? '1' : '0';
  EXPECT_FALSE(VerifyNeutronInstanceSignature(secret, id, flipped));
  std::string upper = sig;
  for (char& c : upper) c = static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
  if (upper != sig) {
    EXPECT_FALSE(VerifyNeutronInstanceSignature(secret, id, upper));
  }
}

}  // namespace
}  // namespace openimds::auth
