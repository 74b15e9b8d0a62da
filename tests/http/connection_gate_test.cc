#include "http/connection_gate.h"

#include <gtest/gtest.h>

#include <thread>
#include <vector>

namespace openimds::http {
namespace {

common::IpAddress Ip(const char* text) { return *common::IpAddress::Parse(text); }

TEST(ConnectionGateTest, CapsEachSourceAndCountsReleases) {
  ConnectionGate gate(0);
  for (int i = 0; i < 3; ++i) {
    EXPECT_EQ(gate.Admit(Ip("10.0.0.1"), 3), ConnectionGate::Verdict::kAdmitted);
  }
  EXPECT_EQ(gate.Admit(Ip("10.0.0.1"), 3), ConnectionGate::Verdict::kTooManyFromSource);
  EXPECT_EQ(gate.Admit(Ip("10.0.0.2"), 3), ConnectionGate::Verdict::kAdmitted);
  EXPECT_EQ(gate.open(), 4u);
  EXPECT_EQ(gate.sources(), 2u);
  gate.Release(Ip("10.0.0.1"), 3);
  EXPECT_EQ(gate.Admit(Ip("10.0.0.1"), 3), ConnectionGate::Verdict::kAdmitted);
  for (int i = 0; i < 3; ++i) gate.Release(Ip("10.0.0.1"), 3);
  gate.Release(Ip("10.0.0.2"), 3);
  EXPECT_EQ(gate.open(), 0u);
  EXPECT_EQ(gate.sources(), 0u);  // no entry outlives its last connection
}

TEST(ConnectionGateTest, CountsAnIpv6SourcePerSlash64AndIpv4PerAddress) {
  ConnectionGate gate(0);
  EXPECT_EQ(gate.Admit(Ip("2001:db8:1:2::1"), 2), ConnectionGate::Verdict::kAdmitted);
  EXPECT_EQ(gate.Admit(Ip("2001:db8:1:2:ffff::9"), 2), ConnectionGate::Verdict::kAdmitted);
  // A third address of the same /64 shares its cap; the next /64 has its own.
  EXPECT_EQ(gate.Admit(Ip("2001:db8:1:2::3"), 2), ConnectionGate::Verdict::kTooManyFromSource);
  EXPECT_EQ(gate.Admit(Ip("2001:db8:1:3::1"), 2), ConnectionGate::Verdict::kAdmitted);
  EXPECT_EQ(gate.Admit(Ip("10.0.0.1"), 2), ConnectionGate::Verdict::kAdmitted);
  EXPECT_EQ(gate.Admit(Ip("10.0.0.2"), 2), ConnectionGate::Verdict::kAdmitted);
  EXPECT_EQ(gate.sources(), 4u);
  // Any address of the /64 gives its slot back.
  gate.Release(Ip("2001:db8:1:2::77"), 2);
  EXPECT_EQ(gate.Admit(Ip("2001:db8:1:2::3"), 2), ConnectionGate::Verdict::kAdmitted);
  EXPECT_EQ(ConnectionGate::SourceKey(Ip("2001:db8:1:2:aaaa::1")).ToString(), "2001:db8:1:2::");
  EXPECT_EQ(ConnectionGate::SourceKey(Ip("10.1.2.3")).ToString(), "10.1.2.3");
}

TEST(ConnectionGateTest, CapsAllConnectionsWhateverTheirSource) {
  ConnectionGate gate(2);
  EXPECT_EQ(gate.Admit(Ip("10.0.0.1"), 0), ConnectionGate::Verdict::kAdmitted);
  EXPECT_EQ(gate.Admit(Ip("fd00::1"), 5), ConnectionGate::Verdict::kAdmitted);
  EXPECT_EQ(gate.Admit(Ip("10.0.0.3"), 5), ConnectionGate::Verdict::kTooManyConnections);
  EXPECT_EQ(gate.open(), 2u);
  // A refusal by the total leaves no per-source count behind.
  gate.Release(Ip("fd00::1"), 5);
  EXPECT_EQ(gate.sources(), 0u);
  EXPECT_EQ(gate.Admit(Ip("10.0.0.3"), 5), ConnectionGate::Verdict::kAdmitted);
}

TEST(ConnectionGateTest, ConcurrentAdmitsNeverExceedTheCaps) {
  ConnectionGate gate(1000);
  std::vector<std::thread> threads;
  std::atomic<int> admitted{0};
  for (int t = 0; t < 4; ++t) {
    threads.emplace_back([&] {
      for (int i = 0; i < 500; ++i) {
        if (gate.Admit(Ip("10.0.0.9"), 300) == ConnectionGate::Verdict::kAdmitted) ++admitted;
      }
    });
  }
  for (auto& t : threads) t.join();
  EXPECT_EQ(admitted.load(), 300);
  EXPECT_EQ(gate.open(), 300u);
}

TEST(ConnectionGateTest, DefaultCapStaysBelowTheDescriptorLimit) {
  EXPECT_EQ(DefaultConnectionCap(1'048'576, 256, 65'536), 65'536u);
  EXPECT_EQ(DefaultConnectionCap(1024, 256, 65'536), 768u);
  EXPECT_EQ(DefaultConnectionCap(100, 256, 65'536), 16u);
}

}  // namespace
}  // namespace openimds::http
