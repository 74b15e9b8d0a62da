// The hot path: rendering a leaf appends to out.body and allocates nothing
// else once the connection's Response has warmed up (body and header
// capacity reused after Clear()). A separate binary because it replaces the
// global allocation functions.
#include <gtest/gtest.h>

#include <atomic>
#include <cstdlib>
#include <new>

#include "auth/token_authority.h"
#include "common/clock.h"
#include "common/metrics.h"
#include "flavour/ec2/ec2_flavour.h"
#include "flavour/ec2/ec2_test_instance.h"

namespace {
std::atomic<bool> g_counting{false};
std::atomic<int> g_allocations{0};
}  // namespace

#pragma GCC diagnostic ignored "-Wmismatched-new-delete"

void* operator new(size_t n) {
  if (g_counting.load(std::memory_order_relaxed)) g_allocations.fetch_add(1);
  if (void* p = std::malloc(n == 0 ? 1 : n)) return p;
  throw std::bad_alloc();
}
void operator delete(void* p) noexcept { std::free(p); }
void operator delete(void* p, size_t) noexcept { std::free(p); }

namespace openimds::flavour::ec2 {
namespace {

class Ec2FlavourAllocTest : public ::testing::Test {
 protected:
  // Allocations made by `calls` rounds of Render for `path`, after one warm-up.
  int AllocationsFor(std::string_view path, std::vector<common::HeaderField> headers) {
    common::Request request;
    request.method = "GET";
    request.path = path;
    request.target = path;
    request.headers = std::move(headers);
    common::Response out;
    EXPECT_TRUE(flavour_.Render(instance_, request, out).ok());
    const std::string first = out.body;
    g_allocations = 0;
    g_counting = true;
    bool same = true;
    for (int i = 0; i < 1000; ++i) {
      out.Clear();
      same &= flavour_.Render(instance_, request, out).ok() && out.body == first;
    }
    g_counting = false;
    EXPECT_TRUE(same);
    return g_allocations.load();
  }

  common::FakeClock clock_{test_support::At("2024-05-01T13:00:00Z")};
  auth::TokenAuthority tokens_ =
      std::move(auth::TokenAuthority::Create({auth::TokenKey{1, std::string(32, 'k')}}, clock_))
          .value();
  common::MetricsRegistry metrics_;
  Ec2Flavour flavour_{Ec2Flavour::Options(), tokens_, clock_, metrics_};
  model::Instance instance_ = test_support::TestInstance();
};

TEST_F(Ec2FlavourAllocTest, LeafWithoutTokenDoesNotAllocate) {
  EXPECT_EQ(AllocationsFor("/latest/meta-data/instance-id", {}), 0);
  EXPECT_EQ(AllocationsFor("/latest//meta-data/placement/availability-zone/", {}), 0);
  EXPECT_EQ(AllocationsFor("/2021-03-23/meta-data/network/interfaces/macs/0e:49:61:0f:c3:11/"
                           "local-ipv4s",
                           {}),
            0);
}

TEST_F(Ec2FlavourAllocTest, LeafWithTokenDoesNotAllocate) {
  instance_.options.http_tokens = model::MetadataOptions::HttpTokens::kRequired;
  auto token = tokens_.Issue(instance_.id, instance_.managed.incarnation, std::chrono::seconds(60));
  ASSERT_TRUE(token.ok());
  EXPECT_EQ(AllocationsFor("/latest/meta-data/instance-id", {{"Host", "169.254.169.254"},
                                                             {"User-Agent", "aws-sdk-go-v2"},
                                                             {"X-aws-ec2-metadata-token", *token}}),
            0);
}

// IMDSv1 requests are counted per instance (imds_v1_requests_total): after
// each instance's first request on a thread, finding its counter allocates
// nothing, however the instances alternate.
TEST_F(Ec2FlavourAllocTest, PerInstanceV1CountersDoNotAllocate) {
  model::Instance other = instance_;
  other.id = "i-0ffffffffffffffff";
  common::Request request;
  request.method = "GET";
  request.path = "/latest/meta-data/instance-id";
  request.target = request.path;
  common::Response out;
  ASSERT_TRUE(flavour_.Render(instance_, request, out).ok());
  out.Clear();
  ASSERT_TRUE(flavour_.Render(other, request, out).ok());
  g_allocations = 0;
  g_counting = true;
  for (int i = 0; i < 1000; ++i) {
    out.Clear();
    (void)flavour_.Render(i % 2 == 0 ? instance_ : other, request, out);
  }
  g_counting = false;
  EXPECT_EQ(g_allocations.load(), 0);
  EXPECT_EQ(metrics_.CounterValue("imds_v1_requests_total", "instance=\"i-0ffffffffffffffff\""),
            501u);
}

}  // namespace
}  // namespace openimds::flavour::ec2
