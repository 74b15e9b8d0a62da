// Fuzz target: IMDSv2 session tokens (auth::TokenAuthority).
//
// Input: "TOKEN\nINSTANCE_ID\nREST" (missing parts are empty).
//
// Invariants (each a FUZZ_CHECK):
//   - Verify(TOKEN, INSTANCE_ID) of any text, with a ring whose keys the
//     input cannot know, is refused, with a reason; text that is not
//     exactly kTokenChars long is refused as malformed. Also for the whole
//     input as the token.
//   - Issue(INSTANCE_ID, ttl) (ttl taken from REST's bytes, 1..21600 s) is
//     a kTokenChars-long base64url token that verifies for INSTANCE_ID,
//     again from the verification cache, and for no other instance id; a
//     token with any one character changed (position and replacement from
//     REST's bytes) is refused; once the ttl has passed it is refused as
//     expired; a ring without its epoch refuses it as unknown_key, and one
//     with its epoch under another key as bad_seal.

#include <chrono>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "auth/token_authority.h"
#include "common/clock.h"
#include "common/time_format.h"
#include "fuzz/fuzz_check.h"

namespace openimds::fuzz {
namespace {

using auth::TokenAuthority;
using auth::TokenError;

struct World {
  common::FakeClock clock{*common::ParseRfc3339("2026-11-25T12:00:00Z")};
  std::optional<TokenAuthority> tokens;   // epochs 6 and 7; 7 issues
  std::optional<TokenAuthority> rotated;  // epoch 8 only
  std::optional<TokenAuthority> rekeyed;  // epochs 6 and 7 under other keys
  World() {
    // Keys derived from nothing the corpus holds.
    tokens.emplace(Make({{6, std::string(32, '\x5a')}, {7, std::string(32, '\xa5')}}));
    rotated.emplace(Make({{8, std::string(32, 'e')}}));
    rekeyed.emplace(Make({{6, std::string(32, 'f')}, {7, std::string(32, 'g')}}));
  }
  TokenAuthority Make(std::vector<auth::TokenKey> keys) {
    auto a = TokenAuthority::Create(std::move(keys), clock);
    FUZZ_CHECK(a.ok(), a.status().ToString());
    return std::move(a).value();
  }
};

World& TheWorld() {
  static World* world = new World();
  return *world;
}

void CheckRefused(const TokenAuthority& tokens, std::string_view token, std::string_view id) {
  TokenError why = static_cast<TokenError>(-1);
  const common::Status s = tokens.Verify(token, id, /*incarnation=*/1, &why);
  FUZZ_CHECK(!s.ok(), "an unknown key's token was accepted: " + Printable(token));
  FUZZ_CHECK(s.code() == common::Code::kUnauthenticated, s.ToString());
  FUZZ_CHECK(why == TokenError::kMalformed || why == TokenError::kUnknownKey ||
                 why == TokenError::kBadSeal || why == TokenError::kExpired,
             "refused without a reason");
  if (token.size() != TokenAuthority::kTokenChars) {
    FUZZ_CHECK(why == TokenError::kMalformed, "a token of the wrong length not malformed");
  }
}

bool IsBase64Url(std::string_view s) {
  for (char c : s) {
    const bool ok = (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
                    c == '-' || c == '_';
    if (!ok) return false;
  }
  return true;
}

}  // namespace
}  // namespace openimds::fuzz

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace openimds;
  using namespace openimds::fuzz;
  World& w = TheWorld();
  const auto start = *common::ParseRfc3339("2026-11-25T12:00:00Z");
  w.clock.Set(start);
  const TokenAuthority& tokens = *w.tokens;

  const std::string_view input(reinterpret_cast<const char*>(data), size);
  std::string_view rest = input;
  const std::string_view token = NextLine(rest);
  const std::string_view id = NextLine(rest);

  for (const TokenAuthority* a : {&*w.tokens, &*w.rotated, &*w.rekeyed}) {
    CheckRefused(*a, token, id);
    CheckRefused(*a, input, id);
  }

  // Issue -> Verify for this instance id.
  uint32_t seed = 0;
  for (char c : rest) seed = seed * 31 + static_cast<unsigned char>(c);
  const std::chrono::seconds ttl(1 + seed % 21600);
  const int64_t incarnation = 1 + seed % 1000;
  auto issued = tokens.Issue(id, incarnation, ttl);
  FUZZ_CHECK(issued.ok(), issued.status().ToString());
  const std::string& t = *issued;
  FUZZ_CHECK(t.size() == auth::TokenAuthority::kTokenChars && IsBase64Url(t), t);
  TokenError why{};
  FUZZ_CHECK(tokens.Verify(t, id, incarnation, &why).ok(), "a fresh token was refused");
  FUZZ_CHECK(tokens.Verify(t, id, incarnation, &why).ok(),
             "a fresh token was refused the second time");
  FUZZ_CHECK(!tokens.Verify(t, id, incarnation + 1).ok(),
             "a token verified for another incarnation of its instance");
  const std::string other = std::string(id) + "x";
  FUZZ_CHECK(!tokens.Verify(t, other, incarnation).ok(),
             "a token verified for another instance");
  if (!id.empty()) {
    FUZZ_CHECK(!tokens.Verify(t, id.substr(0, id.size() - 1), incarnation).ok(),
               "a token verified for a prefix of its instance id");
  }

  // One character changed, anywhere, into anything else.
  std::string altered = t;
  const size_t pos = seed % altered.size();
  const char replacement = rest.empty() ? 'A' : rest.back();
  altered[pos] = replacement != altered[pos] ? replacement : (replacement == 'A' ? 'B' : 'A');
  FUZZ_CHECK(!tokens.Verify(altered, id, incarnation).ok(),
             "an altered token verified: " + Printable(altered));

  // Expiry: good one second before, refused at the expiry second.
  w.clock.Set(start + ttl - std::chrono::seconds(1));
  FUZZ_CHECK(tokens.Verify(t, id, incarnation).ok(), "a token expired early");
  w.clock.Set(start + ttl);
  FUZZ_CHECK(!tokens.Verify(t, id, incarnation, &why).ok() && why == TokenError::kExpired,
             "a token outlived its ttl");
  w.clock.Set(start);

  // Rotation: a ring without epoch 7 does not know the token; one whose
  // epoch 7 is another key cannot open it.
  FUZZ_CHECK(!w.rotated->Verify(t, id, incarnation, &why).ok() && why == TokenError::kUnknownKey,
             "a token outlived its key");
  FUZZ_CHECK(!w.rekeyed->Verify(t, id, incarnation, &why).ok() && why == TokenError::kBadSeal,
             "a token opened under another key");
  return 0;
}
