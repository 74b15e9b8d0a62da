#include "model/record_limits.h"

#include <cctype>
#include <cstdio>
#include <fstream>
#include <functional>
#include <sstream>
#include <string>

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "model/instance_json.h"

namespace openimds::model {
namespace {

using common::Code;
using ::testing::HasSubstr;

std::string Repeat(std::string_view s, size_t n) {
  std::string out;
  out.reserve(s.size() * n);
  for (size_t i = 0; i < n; ++i) out += s;
  return out;
}

Instance Minimal() {
  Instance in;
  in.id = "i-1";
  in.network = "default";
  return in;
}

Nic MakeNic(int device_number) {
  Nic nic;
  char mac[18];
  std::snprintf(mac, sizeof(mac), "02:00:00:00:%02x:%02x", device_number / 256,
                device_number % 256);
  nic.mac = mac;
  nic.device_number = device_number;
  return nic;
}

// One field taken to its limit (`at`) or one past it (`over`).
struct Case {
  std::string name;
  std::function<void(Instance&, size_t n)> fill;  // n entries, bytes or characters
  Limit limit;
  std::string message_over;  // exactly, for n = limit + 1 at the defaults
};

void PrintTo(const Case& c, std::ostream* os) { *os << c.name; }

std::vector<Case> Cases() {
  return {
      {"name", [](Instance& in, size_t n) { in.name = Repeat("n", n); }, Limit::kTextBytes,
       "/name: 4097 bytes; the limit is 4096"},
      {"image_id", [](Instance& in, size_t n) { in.image_id = Repeat("a", n); },
       Limit::kTextBytes, "/image_id: 4097 bytes; the limit is 4096"},
      {"hostname", [](Instance& in, size_t n) { in.hostname = Repeat("h", n); },
       Limit::kHostnameBytes, "/hostname: 256 bytes; the limit is 255"},
      {"nic hostname",
       [](Instance& in, size_t n) {
         in.nics.push_back(MakeNic(0));
         in.nics[0].public_hostname = Repeat("h", n);
       },
       Limit::kHostnameBytes, "/nics/0/public_hostname: 256 bytes; the limit is 255"},
      {"user_data", [](Instance& in, size_t n) { in.user_data = std::string(n, 'u'); },
       Limit::kUserDataBytes, "/user_data: 16385 bytes; the limit is 16384"},
      {"ssh_keys",
       [](Instance& in, size_t n) {
         for (size_t i = 0; i < n; ++i) {
           in.ssh_keys.push_back({"k" + std::to_string(i), "ssh-ed25519 AAAA k"});
         }
       },
       Limit::kSshKeys, "/ssh_keys: 101 keys; the limit is 100"},
      {"ssh key", [](Instance& in, size_t n) { in.ssh_keys.push_back({"k", Repeat("A", n)}); },
       Limit::kSshKeyBytes, "/ssh_keys/0/key: 16385 bytes; the limit is 16384"},
      {"tags",
       [](Instance& in, size_t n) {
         for (size_t i = 0; i < n; ++i) in.tags["t" + std::to_string(i)] = "v";
       },
       Limit::kTags, "/tags: 257 tags; the limit is 256"},
      // Characters, not bytes: "é" is two bytes.
      {"tag key", [](Instance& in, size_t n) { in.tags[Repeat("\xc3\xa9", n)] = "v"; },
       Limit::kTagKeyChars, "/tags/" + Repeat("\xc3\xa9", 129) + ": key is 129 characters; the limit is 128"},
      {"tag value", [](Instance& in, size_t n) { in.tags["k"] = Repeat("\xc3\xa9", n); },
       Limit::kTagValueChars, "/tags/k: value is 257 characters; the limit is 256"},
      {"nics",
       [](Instance& in, size_t n) {
         for (size_t i = 0; i < n; ++i) in.nics.push_back(MakeNic(static_cast<int>(i)));
       },
       Limit::kNics, "/nics: 129 NICs; the limit is 128"},
      {"private_ipv4s",
       [](Instance& in, size_t n) {
         in.nics.push_back(MakeNic(0));
         for (size_t i = 0; i < n; ++i) in.nics[0].private_ipv4s.push_back("10.0.0." + std::to_string(i));
       },
       Limit::kAddressesPerNic, "/nics/0/private_ipv4s: 65 entries; the limit is 64"},
      {"security_groups",
       [](Instance& in, size_t n) {
         in.nics.push_back(MakeNic(0));
         for (size_t i = 0; i < n; ++i) in.nics[0].security_groups.push_back("sg");
       },
       Limit::kListItems, "/nics/0/security_groups: 1025 entries; the limit is 1024"},
      {"block_devices",
       [](Instance& in, size_t n) {
         for (size_t i = 0; i < n; ++i) in.block_devices["ebs" + std::to_string(i)] = "sdb";
       },
       Limit::kBlockDevices, "/block_devices: 129 block devices; the limit is 128"},
      {"credentials",
       [](Instance& in, size_t n) {
         in.iam = IamRole{};
         in.iam->name = "r";
         in.iam->credentials = Credentials{"AKIA", "secret", Repeat("t", n)};
       },
       Limit::kCredentialBytes, "/iam/credentials/token: 16385 bytes; the limit is 16384"},
      {"vendor_data",
       [](Instance& in, size_t n) {
         in.guest.mut().vendor_data = "{\"a\":\"" + Repeat("v", n - 8) + "\"}";
       },
       Limit::kVendorDataBytes, "/vendor_data: 65537 bytes; the limit is 65536"},
      {"dedicated_cpus",
       [](Instance& in, size_t n) {
         for (size_t i = 0; i < n; ++i) in.guest.mut().dedicated_cpus.push_back(static_cast<int>(i));
       },
       Limit::kListItems, "/dedicated_cpus: 1025 entries; the limit is 1024"},
      {"event description",
       [](Instance& in, size_t n) {
         ScheduledEvent ev;
         ev.id = "e";
         ev.description = Repeat("d", n);
         in.ec2.mut().events.scheduled.push_back(ev);
       },
       Limit::kTextBytes, "/events/scheduled/0/description: 4097 bytes; the limit is 4096"},
      {"product_codes",
       [](Instance& in, size_t n) {
         for (size_t i = 0; i < n; ++i) in.ec2.mut().product_codes.push_back("p");
       },
       Limit::kListItems, "/product_codes: 1025 entries; the limit is 1024"},
  };
}

class LimitCaseTest : public ::testing::TestWithParam<Case> {};

TEST_P(LimitCaseTest, AtTheLimitPassesOneMoreIsRefusedNamingThePointer) {
  const Case& c = GetParam();
  const RecordLimits limits;
  const size_t limit = limits[c.limit];

  Instance at = Minimal();
  c.fill(at, limit);
  Limit exceeded = Limit::kRecordBytes;
  EXPECT_TRUE(CheckLimits(at, limits, &exceeded).ok()) << CheckLimits(at, limits).ToString();

  Instance over = Minimal();
  c.fill(over, limit + 1);
  const common::Status s = CheckLimits(over, limits, &exceeded);
  EXPECT_EQ(s.code(), Code::kPayloadTooLarge);
  EXPECT_EQ(s.message(), c.message_over);
  EXPECT_EQ(exceeded, c.limit);
}

INSTANTIATE_TEST_SUITE_P(Defaults, LimitCaseTest, ::testing::ValuesIn(Cases()),
                         [](const ::testing::TestParamInfo<Case>& info) {
                           std::string name;
                           for (char ch : info.param.name) name += std::isalnum(ch) ? ch : '_';
                           return name;
                         });

TEST(RecordLimitsTest, TheDocumentedExampleIsWithinTheLimits) {
  std::ifstream file(std::string(OPENIMDS_DOCS_DIR) + "/instance.md");
  ASSERT_TRUE(file);
  std::stringstream ss;
  ss << file.rdbuf();
  const std::string doc = ss.str();
  const size_t start = doc.find("```json\n");
  const size_t end = doc.find("```", start + 8);
  auto in = FromJsonText(std::string_view(doc).substr(start + 8, end - start - 8));
  ASSERT_TRUE(in.ok()) << in.status().ToString();
  EXPECT_TRUE(CheckLimits(*in, RecordLimits()).ok());
}

// Counts are checked before the entries: a list of 100,000 oversized keys is
// refused for its length.
TEST(RecordLimitsTest, ListLengthBeforeEntries) {
  Instance in = Minimal();
  const Str oversized(Repeat("A", 20000));  // shared by every entry
  for (int i = 0; i < 100000; ++i) in.ssh_keys.push_back({"k" + std::to_string(i), oversized});
  EXPECT_EQ(CheckLimits(in, RecordLimits()).message(), "/ssh_keys: 100000 keys; the limit is 100");
}

TEST(RecordLimitsTest, UserDataLimitIsConfigurable) {
  RecordLimits limits;
  ASSERT_TRUE(limits.Set(Limit::kUserDataBytes, 32768).ok());
  EXPECT_EQ(limits[Limit::kUserDataBytes], 32768u);
  Instance in = Minimal();
  in.user_data = std::string(20000, 'u');
  EXPECT_TRUE(CheckLimits(in, limits).ok());
  EXPECT_EQ(CheckLimits(in, RecordLimits()).message(),
            "/user_data: 20000 bytes; the limit is 16384");
  in.user_data = std::string(40000, 'u');
  EXPECT_EQ(CheckLimits(in, limits).message(), "/user_data: 40000 bytes; the limit is 32768");

  // 1..64 KiB: more than a record has ever been able to hold is refused.
  EXPECT_TRUE(limits.Set(Limit::kUserDataBytes, 65536).ok());
  EXPECT_EQ(limits.Set(Limit::kUserDataBytes, 65537).code(), Code::kInvalidArgument);
  EXPECT_EQ(limits.Set(Limit::kUserDataBytes, 0).code(), Code::kInvalidArgument);
  EXPECT_EQ(limits[Limit::kUserDataBytes], 65536u);
  // The others are fixed.
  EXPECT_THAT(limits.Set(Limit::kTags, 1000).message(), HasSubstr("fixed"));
  EXPECT_EQ(limits[Limit::kTags], 256u);
}

TEST(RecordLimitsTest, RecordBytes) {
  const RecordLimits limits;
  EXPECT_TRUE(CheckRecordBytes(1024 * 1024, limits).ok());
  const common::Status s = CheckRecordBytes(52428800, limits);
  EXPECT_EQ(s.code(), Code::kPayloadTooLarge);
  EXPECT_THAT(s.message(), ::testing::StartsWith("/: 52428800 bytes; the limit is 1048576"));
}

// docs/instance.md has one table of the limits: every row of kLimits, by
// name, with its default.
TEST(RecordLimitsTest, DocumentedInInstanceMd) {
  std::ifstream file(std::string(OPENIMDS_DOCS_DIR) + "/instance.md");
  ASSERT_TRUE(file);
  std::stringstream ss;
  ss << file.rdbuf();
  const std::string doc = ss.str();
  const size_t section = doc.find("\n## Limits\n");
  ASSERT_NE(section, std::string::npos) << "docs/instance.md has no \"## Limits\" section";
  const std::string body = doc.substr(section, doc.find("\n## ", section + 1) - section);
  for (const LimitInfo& info : kLimits) {
    const std::string row = "| `" + std::string(info.name) + "` | " +
                            std::to_string(info.default_value) + " |";
    EXPECT_THAT(body, HasSubstr(row)) << info.name;
  }
}

}  // namespace
}  // namespace openimds::model
