#include "catalog/eui64.h"

#include <gtest/gtest.h>

#include <string>
#include <utility>
#include <vector>

namespace openimds::catalog {
namespace {

TEST(Eui64LinkLocal, DerivesTheModifiedEui64Address) {
  const std::vector<std::pair<std::string, std::string>> cases = {
      {"52:54:00:12:34:56", "fe80::5054:ff:fe12:3456"},  // QEMU's prefix: U/L bit 0 -> 1
      {"fa:16:3e:aa:00:01", "fe80::f816:3eff:feaa:1"},   // OpenStack's: U/L bit 1 -> 0
      {"02:00:00:00:00:00", "fe80::ff:fe00:0"},
      {"00:00:00:00:00:00", "fe80::200:ff:fe00:0"},
      {"ff:ff:ff:ff:ff:ff", "fe80::fdff:ffff:feff:ffff"},
      {"0E:49:61:0F:C3:11", "fe80::c49:61ff:fe0f:c311"},  // either case
      {"52-54-00-12-34-56", "fe80::5054:ff:fe12:3456"},  // Windows spelling
  };
  for (const auto& [mac, want] : cases) {
    const auto got = Eui64LinkLocal(mac);
    ASSERT_TRUE(got.has_value()) << mac;
    EXPECT_FALSE(got->is_v4());
    EXPECT_EQ(got->ToString(), want) << mac;
  }
}

TEST(Eui64LinkLocal, RefusesAnythingButSixOctets) {
  for (const std::string bad :
       {"", "52:54:00:12:34", "52:54:00:12:34:56:78", "52:54:00:12:34:5g", "525400123456",
        "52:54-00:12:34:56", "52.54.00.12.34.56", " 52:54:00:12:34:56", "5:254:00:12:34:56",
        "00:00:00:00:00:00:00:00:00:00:00:00:00:00:00:00:00:00:00:00"}) {
    EXPECT_FALSE(Eui64LinkLocal(bad).has_value()) << bad;
  }
}

}  // namespace
}  // namespace openimds::catalog
