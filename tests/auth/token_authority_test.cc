#include "auth/token_authority.h"

#include <gtest/gtest.h>

#include <chrono>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "common/clock.h"
#include "common/encoding.h"

namespace openimds::auth {
namespace {

using std::chrono::seconds;
using std::chrono::system_clock;

constexpr std::string_view kInstance = "i-0123456789abcdef0";
constexpr int64_t kIncarnation = 7;

TokenKey Key(uint32_t epoch, char fill) { return TokenKey{epoch, std::string(32, fill)}; }

class TokenAuthorityTest : public ::testing::Test {
 protected:
  common::FakeClock clock_{system_clock::time_point(seconds(1'700'000'000))};

  TokenAuthority Make(std::vector<TokenKey> keys) {
    auto a = TokenAuthority::Create(std::move(keys), clock_);
    EXPECT_TRUE(a.ok()) << a.status().ToString();
    return std::move(a).value();
  }

  // Verify, returning the refusal reason (or nullopt when accepted).
  static std::optional<TokenError> Check(const TokenAuthority& a, std::string_view token,
                                         std::string_view instance = kInstance,
                                         int64_t incarnation = kIncarnation) {
    TokenError why = TokenError::kMalformed;
    common::Status s = a.Verify(token, instance, incarnation, &why);
    if (s.ok()) return std::nullopt;
    EXPECT_EQ(s.code(), common::Code::kUnauthenticated);
    return why;
  }
};

TEST_F(TokenAuthorityTest, RoundTrip) {
  TokenAuthority a = Make({Key(1, 'a')});
  auto token = a.Issue(kInstance, kIncarnation, seconds(60));
  ASSERT_TRUE(token.ok());
  EXPECT_EQ(Check(a, *token), std::nullopt);
  EXPECT_TRUE(a.Verify(*token, kInstance, kIncarnation).ok());  // why may be null
}

// An empty instance id that is a view without storage (data() == nullptr)
// goes through issue, verify and the per-thread cache of verified tokens
// without passing the null pointer to memcmp/memcpy: undefined behaviour even
// for zero bytes, which UBSan reports. fuzz/corpus/imds_token/empty replays
// the same under the sanitizers.
TEST_F(TokenAuthorityTest, EmptyInstanceIdWithoutStorage) {
  TokenAuthority a = Make({Key(1, 'a')});
  const std::string_view none;
  ASSERT_EQ(none.data(), nullptr);
  auto token = a.Issue(none, kIncarnation, seconds(60));
  ASSERT_TRUE(token.ok());
  EXPECT_EQ(Check(a, *token, none), std::nullopt);  // verified, then cached
  EXPECT_EQ(Check(a, *token, none), std::nullopt);  // from the cache
  EXPECT_EQ(Check(a, *token, "x"), TokenError::kBadSeal);
  auto other = a.Issue("x", kIncarnation, seconds(60));
  ASSERT_TRUE(other.ok());
  EXPECT_EQ(Check(a, *other, none), TokenError::kBadSeal);
}

TEST_F(TokenAuthorityTest, TokenShape) {
  TokenAuthority a = Make({Key(1, 'a')});
  std::set<std::string> seen;
  for (int i = 0; i < 50; ++i) {
    auto token = a.Issue(kInstance, kIncarnation, seconds(21600));
    ASSERT_TRUE(token.ok());
    ASSERT_EQ(token->size(), TokenAuthority::kTokenChars);
    EXPECT_EQ(token->size(), 55u);
    for (char c : *token) {
      const bool url_safe = (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') ||
                            (c >= '0' && c <= '9') || c == '-' || c == '_';
      EXPECT_TRUE(url_safe) << "character " << int(c) << " in " << *token;
    }
    EXPECT_EQ(token->find('\n'), std::string::npos);
    seen.insert(*token);
  }
  // A fresh random nonce per token: no two tokens are alike.
  EXPECT_EQ(seen.size(), 50u);
}

TEST_F(TokenAuthorityTest, WrongInstanceIsBadSeal) {
  TokenAuthority a = Make({Key(1, 'a')});
  auto token = a.Issue(kInstance, kIncarnation, seconds(60));
  ASSERT_TRUE(token.ok());
  EXPECT_EQ(Check(a, *token, "i-0123456789abcdef1"), TokenError::kBadSeal);
  EXPECT_EQ(Check(a, *token, ""), TokenError::kBadSeal);
  EXPECT_EQ(Check(a, *token, std::string(kInstance) + "x"), TokenError::kBadSeal);
}

// An instance deleted and created again under its id is a new incarnation:
// the old instance's token must not open the new one's metadata.
TEST_F(TokenAuthorityTest, AnotherIncarnationIsBadSeal) {
  TokenAuthority a = Make({Key(1, 'a')});
  auto first = a.Issue(kInstance, 1, seconds(60));
  ASSERT_TRUE(first.ok());
  EXPECT_EQ(Check(a, *first, kInstance, 1), std::nullopt);
  // The verified-token cache now holds it for incarnation 1; it must not
  // answer for incarnation 2.
  EXPECT_EQ(Check(a, *first, kInstance, 2), TokenError::kBadSeal);
  EXPECT_EQ(Check(a, *first, kInstance, 0), TokenError::kBadSeal);
  EXPECT_EQ(Check(a, *first, kInstance, int64_t{1} << 32 | 1), TokenError::kBadSeal);

  auto second = a.Issue(kInstance, 2, seconds(60));
  ASSERT_TRUE(second.ok());
  EXPECT_EQ(Check(a, *second, kInstance, 2), std::nullopt);
  EXPECT_EQ(Check(a, *second, kInstance, 1), TokenError::kBadSeal);
  EXPECT_EQ(Check(a, *first, kInstance, 1), std::nullopt);  // still good for its own
}

// Tokens of the layout before the incarnation was bound (version 1) are
// refused as malformed, before any decryption: clients fetch new ones.
TEST_F(TokenAuthorityTest, VersionOneTokensAreMalformed) {
  TokenAuthority a = Make({Key(1, 'a')});
  auto token = a.Issue(kInstance, kIncarnation, seconds(60));
  ASSERT_TRUE(token.ok());
  auto raw = common::Base64UrlDecode(*token);
  ASSERT_TRUE(raw.has_value());
  EXPECT_EQ((*raw)[0], 2);
  (*raw)[0] = 1;
  EXPECT_EQ(Check(a, common::Base64UrlEncode(*raw)), TokenError::kMalformed);
}

TEST_F(TokenAuthorityTest, EverySingleCharacterAlterationIsRefused) {
  TokenAuthority a = Make({Key(1, 'a')});
  auto token = a.Issue(kInstance, kIncarnation, seconds(60));
  ASSERT_TRUE(token.ok());
  static constexpr std::string_view kAlphabet =
      "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
  for (size_t i = 0; i < token->size(); ++i) {
    for (char c : kAlphabet) {
      if (c == (*token)[i]) continue;
      std::string altered = *token;
      altered[i] = c;
      EXPECT_NE(Check(a, altered), std::nullopt) << "position " << i << " -> " << c;
    }
    std::string non_alphabet = *token;
    non_alphabet[i] = '+';
    EXPECT_EQ(Check(a, non_alphabet), TokenError::kMalformed) << "position " << i;
  }
}

TEST_F(TokenAuthorityTest, EverySingleByteAlterationIsRefused) {
  TokenAuthority a = Make({Key(1, 'a')});
  auto token = a.Issue(kInstance, kIncarnation, seconds(60));
  ASSERT_TRUE(token.ok());
  auto raw = common::Base64UrlDecode(*token);
  ASSERT_TRUE(raw.has_value());
  ASSERT_EQ(raw->size(), 41u);
  for (size_t i = 0; i < raw->size(); ++i) {
    for (int bit = 0; bit < 8; ++bit) {
      std::string altered = *raw;
      altered[i] = static_cast<char>(altered[i] ^ (1 << bit));
      const std::string encoded = common::Base64UrlEncode(altered);
      auto why = Check(a, encoded);
      ASSERT_NE(why, std::nullopt) << "byte " << i << " bit " << bit;
      // Byte 0 is the version, bytes 1..4 the epoch; everything else is sealed.
      if (i == 0) {
        EXPECT_EQ(*why, TokenError::kMalformed);
      } else if (i <= 4) {
        EXPECT_EQ(*why, TokenError::kUnknownKey);
      } else {
        EXPECT_EQ(*why, TokenError::kBadSeal);
      }
    }
  }
}

TEST_F(TokenAuthorityTest, TruncatedOrExtendedIsMalformed) {
  TokenAuthority a = Make({Key(1, 'a')});
  auto token = a.Issue(kInstance, kIncarnation, seconds(60));
  ASSERT_TRUE(token.ok());
  const std::vector<std::string> cases = {
      "",
      token->substr(0, 54),
      token->substr(1),
      *token + "A",
      *token + "\n",
      " " + *token,
      *token + "=",
      std::string(4096, 'A'),
      common::Base64Encode(*common::Base64UrlDecode(*token)),  // standard alphabet, padded
  };
  for (const auto& c : cases) {
    EXPECT_EQ(Check(a, c), TokenError::kMalformed) << "'" << c << "'";
  }
}

TEST_F(TokenAuthorityTest, ExpiresWithTheClock) {
  TokenAuthority a = Make({Key(1, 'a')});
  auto token = a.Issue(kInstance, kIncarnation, seconds(60));
  ASSERT_TRUE(token.ok());
  clock_.Advance(seconds(59));
  EXPECT_EQ(Check(a, *token), std::nullopt);
  clock_.Advance(seconds(1));
  EXPECT_EQ(Check(a, *token), TokenError::kExpired);
  clock_.Advance(seconds(10000));
  EXPECT_EQ(Check(a, *token), TokenError::kExpired);
}

TEST_F(TokenAuthorityTest, MaximumTtlLastsSixHours) {
  TokenAuthority a = Make({Key(1, 'a')});
  auto token = a.Issue(kInstance, kIncarnation, seconds(21600));
  ASSERT_TRUE(token.ok());
  clock_.Advance(seconds(21599));
  EXPECT_EQ(Check(a, *token), std::nullopt);
  clock_.Advance(seconds(1));
  EXPECT_EQ(Check(a, *token), TokenError::kExpired);
}

TEST_F(TokenAuthorityTest, UnknownEpoch) {
  TokenAuthority issuer = Make({Key(7, 'a')});
  TokenAuthority verifier = Make({Key(8, 'a')});  // same bytes, another epoch
  auto token = issuer.Issue(kInstance, kIncarnation, seconds(60));
  ASSERT_TRUE(token.ok());
  EXPECT_EQ(Check(verifier, *token), TokenError::kUnknownKey);
}

TEST_F(TokenAuthorityTest, SameEpochDifferentKeyIsBadSeal) {
  TokenAuthority issuer = Make({Key(1, 'a')});
  TokenAuthority other = Make({Key(1, 'b')});
  auto token = issuer.Issue(kInstance, kIncarnation, seconds(60));
  ASSERT_TRUE(token.ok());
  EXPECT_EQ(Check(other, *token), TokenError::kBadSeal);
}

TEST_F(TokenAuthorityTest, Rotation) {
  TokenAuthority old_ring = Make({Key(1, 'a')});
  auto old_token = old_ring.Issue(kInstance, kIncarnation, seconds(600));
  ASSERT_TRUE(old_token.ok());

  // Key 2 added: it issues, key 1 still verifies (order of the ring is irrelevant).
  TokenAuthority rotated = Make({Key(2, 'b'), Key(1, 'a')});
  EXPECT_EQ(Check(rotated, *old_token), std::nullopt);
  auto new_token = rotated.Issue(kInstance, kIncarnation, seconds(600));
  ASSERT_TRUE(new_token.ok());
  EXPECT_EQ(Check(rotated, *new_token), std::nullopt);
  EXPECT_EQ(Check(old_ring, *new_token), TokenError::kUnknownKey);  // issued by epoch 2

  // Key 1 removed: its tokens are refused, epoch 2's still pass.
  TokenAuthority retired = Make({Key(2, 'b')});
  EXPECT_EQ(Check(retired, *old_token), TokenError::kUnknownKey);
  EXPECT_EQ(Check(retired, *new_token), std::nullopt);
}

TEST_F(TokenAuthorityTest, AuthoritiesSharingKeysAcceptEachOther) {
  TokenAuthority a = Make({Key(1, 'a'), Key(2, 'b')});
  TokenAuthority b = Make({Key(2, 'b'), Key(1, 'a')});
  auto from_a = a.Issue(kInstance, kIncarnation, seconds(60));
  auto from_b = b.Issue(kInstance, kIncarnation, seconds(60));
  ASSERT_TRUE(from_a.ok());
  ASSERT_TRUE(from_b.ok());
  EXPECT_EQ(Check(b, *from_a), std::nullopt);
  EXPECT_EQ(Check(a, *from_b), std::nullopt);
}

TEST_F(TokenAuthorityTest, CreateValidatesTheRing) {
  EXPECT_EQ(TokenAuthority::Create({}, clock_).status().code(), common::Code::kInvalidArgument);
  EXPECT_EQ(TokenAuthority::Create({TokenKey{1, std::string(31, 'a')}}, clock_).status().code(),
            common::Code::kInvalidArgument);
  EXPECT_EQ(TokenAuthority::Create({TokenKey{1, std::string(33, 'a')}}, clock_).status().code(),
            common::Code::kInvalidArgument);
  EXPECT_EQ(TokenAuthority::Create({Key(3, 'a'), Key(3, 'b')}, clock_).status().code(),
            common::Code::kInvalidArgument);
}

TEST_F(TokenAuthorityTest, NewKeyMaterialIsRandom32Bytes) {
  auto k1 = TokenAuthority::NewKeyMaterial();
  auto k2 = TokenAuthority::NewKeyMaterial();
  ASSERT_TRUE(k1.ok());
  ASSERT_TRUE(k2.ok());
  EXPECT_EQ(k1->size(), 32u);
  EXPECT_NE(*k1, *k2);
  // And it works as a key.
  TokenAuthority a = Make({TokenKey{1, *k1}});
  auto token = a.Issue(kInstance, kIncarnation, seconds(60));
  ASSERT_TRUE(token.ok());
  EXPECT_EQ(Check(a, *token), std::nullopt);
}

// Verification contexts are cached per thread by key: more distinct keys than
// cache slots, interleaved, must never verify a token under the wrong key.
TEST_F(TokenAuthorityTest, ManyRingsInterleaved) {
  std::vector<TokenAuthority> rings;
  std::vector<std::string> tokens;
  for (int i = 0; i < 9; ++i) {
    rings.push_back(Make({Key(1, static_cast<char>('a' + i))}));
    auto token = rings.back().Issue(kInstance, kIncarnation, seconds(60));
    ASSERT_TRUE(token.ok());
    tokens.push_back(*token);
  }
  for (int round = 0; round < 3; ++round) {
    for (size_t r = 0; r < rings.size(); ++r) {
      for (size_t t = 0; t < tokens.size(); ++t) {
        const auto why = Check(rings[r], tokens[t]);
        if (r == t) {
          EXPECT_EQ(why, std::nullopt) << r;
        } else {
          EXPECT_EQ(why, TokenError::kBadSeal) << r << " " << t;
        }
      }
    }
  }
}

TEST_F(TokenAuthorityTest, ConcurrentUseFromManyThreads) {
  TokenAuthority a = Make({Key(1, 'a'), Key(2, 'b')});
  std::vector<std::thread> threads;
  std::vector<int> failures(4, 0);
  for (int t = 0; t < 4; ++t) {
    threads.emplace_back([&, t] {
      const std::string id = "i-" + std::to_string(t);
      for (int i = 0; i < 200; ++i) {
        auto token = a.Issue(id, kIncarnation, seconds(60));
        if (!token.ok() || !a.Verify(*token, id, kIncarnation).ok() ||
            a.Verify(*token, "i-x", kIncarnation).ok()) {
          ++failures[t];
        }
      }
    });
  }
  for (auto& th : threads) th.join();
  EXPECT_EQ(failures, std::vector<int>(4, 0));
}

TEST(TokenErrorNameTest, StableLabels) {
  EXPECT_EQ(TokenErrorName(TokenError::kMalformed), "malformed");
  EXPECT_EQ(TokenErrorName(TokenError::kUnknownKey), "unknown_key");
  EXPECT_EQ(TokenErrorName(TokenError::kBadSeal), "bad_seal");
  EXPECT_EQ(TokenErrorName(TokenError::kExpired), "expired");
}

}  // namespace
}  // namespace openimds::auth
