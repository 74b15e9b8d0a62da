// Verify runs on every GET that carries a token: it must not allocate once
// the calling thread has warmed up. Counts both C++ and OpenSSL allocations.
// A separate binary because it replaces the global allocation functions.
#include <gtest/gtest.h>
#include <openssl/crypto.h>

#include <atomic>
#include <chrono>
#include <cstdlib>
#include <new>

#include "auth/token_authority.h"
#include "common/clock.h"

namespace {

std::atomic<bool> g_counting{false};
std::atomic<int> g_allocations{0};

void Note() {
  if (g_counting.load(std::memory_order_relaxed)) g_allocations.fetch_add(1);
}

void* CountingMalloc(size_t n, const char*, int) {
  Note();
  return std::malloc(n);
}
void* CountingRealloc(void* p, size_t n, const char*, int) {
  Note();
  return std::realloc(p, n);
}
void CountingFree(void* p, const char*, int) { std::free(p); }

// Must run before OpenSSL allocates anything: a static initialiser in this
// binary runs before main and before any OpenSSL call.
const bool g_installed = CRYPTO_set_mem_functions(CountingMalloc, CountingRealloc, CountingFree);

}  // namespace

#pragma GCC diagnostic ignored "-Wmismatched-new-delete"

void* operator new(size_t n) {
  Note();
  if (void* p = std::malloc(n == 0 ? 1 : n)) return p;
  throw std::bad_alloc();
}
void operator delete(void* p) noexcept { std::free(p); }
void operator delete(void* p, size_t) noexcept { std::free(p); }

namespace openimds::auth {
namespace {

TEST(TokenAuthorityAllocTest, VerifyDoesNotAllocate) {
  ASSERT_TRUE(g_installed);
  common::FakeClock clock(std::chrono::system_clock::time_point(std::chrono::seconds(1000)));
  auto authority = TokenAuthority::Create(
      {TokenKey{1, std::string(32, 'k')}, TokenKey{2, std::string(32, 'm')}}, clock);
  ASSERT_TRUE(authority.ok());
  auto token = authority->Issue("i-0123456789abcdef0", 7, std::chrono::seconds(60));
  ASSERT_TRUE(token.ok());
  ASSERT_TRUE(authority->Verify(*token, "i-0123456789abcdef0", 7).ok());  // warm the thread

  std::string bad = *token;
  bad[20] = bad[20] == 'A' ? 'B' : 'A';
  TokenError why;
  g_counting = true;
  int accepted = 0;
  for (int i = 0; i < 1000; ++i) {
    accepted += authority->Verify(*token, "i-0123456789abcdef0", 7, &why).ok() ? 1 : 0;
    accepted += authority->Verify(bad, "i-0123456789abcdef0", 7, &why).ok() ? 1 : 0;
    accepted += authority->Verify(*token, "i-other", 7, &why).ok() ? 1 : 0;
    accepted += authority->Verify("short", "i-0123456789abcdef0", 7, &why).ok() ? 1 : 0;
  }
  g_counting = false;
  EXPECT_EQ(accepted, 1000);
  EXPECT_EQ(g_allocations.load(), 0);
}

}  // namespace
}  // namespace openimds::auth
