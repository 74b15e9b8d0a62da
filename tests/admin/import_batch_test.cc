// ParseImportBody (admin/import_batch.h): an import body's records parsed on
// several threads and checked in file order, without a store or a socket.
#include "admin/import_batch.h"

#include <gtest/gtest.h>

#include <cstdio>
#include <optional>
#include <string>
#include <vector>

namespace openimds::admin {
namespace {

// A valid record with its own id, MAC and address (n < 60000).
std::string Record(int n) {
  char text[160];
  std::snprintf(text, sizeof(text),
                R"({"id":"i-%d","nics":[{"mac":"02:00:00:00:%02x:%02x",)"
                R"("private_ipv4s":["10.0.%d.%d"]}]})",
                n, n / 256, n % 256, n / 250, n % 250 + 1);
  return text;
}

TEST(ImportBatchTest, RecordsInFileOrderWithTheirLineNumbers) {
  const std::string body = Record(1) + "\n\n  \t\r\n" + Record(2) + "\n" + Record(3);
  std::optional<model::Limit> exceeded;
  auto batch = ParseImportBody(body, model::RecordLimits(), 4, exceeded);
  ASSERT_TRUE(batch.ok()) << batch.status().ToString();
  ASSERT_EQ(batch->instances.size(), 3u);
  EXPECT_EQ(batch->instances[0]->id, "i-1");
  EXPECT_EQ(batch->instances[2]->id, "i-3");
  EXPECT_EQ(batch->lines, (std::vector<int>{1, 4, 5}));
  EXPECT_EQ(batch->line_of_id.at("i-2"), 4);
  EXPECT_FALSE(exceeded.has_value());
}

// Enough lines to be parsed in chunks on every thread: the refusal is the
// earliest bad line, whichever thread met which first.
TEST(ImportBatchTest, TheFirstBadLineInTheFileIsTheOneReported) {
  std::string body;
  for (int n = 1; n <= 600; ++n) {
    if (n == 333) {
      body += R"({"id":"i-333","colour":1})";
    } else if (n == 590) {
      body += "{not json";
    } else {
      body += Record(n);
    }
    body += "\n";
  }
  for (unsigned threads : {1u, 2u, 8u}) {
    std::optional<model::Limit> exceeded;
    auto batch = ParseImportBody(body, model::RecordLimits(), threads, exceeded);
    ASSERT_FALSE(batch.ok());
    EXPECT_EQ(batch.status().code(), common::Code::kInvalidArgument);
    EXPECT_EQ(batch.status().message(), "line 333: /colour: unknown field") << threads;
    EXPECT_FALSE(exceeded.has_value());
  }
}

TEST(ImportBatchTest, LinesAreCheckedAgainstEachOther) {
  std::optional<model::Limit> exceeded;
  auto twice = ParseImportBody(Record(1) + "\n" + Record(2) + "\n" + Record(1),
                               model::RecordLimits(), 2, exceeded);
  ASSERT_FALSE(twice.ok());
  EXPECT_EQ(twice.status().message(), "line 3: /id: \"i-1\" is already on line 1");

  const std::string same_address =
      R"({"id":"i-9","nics":[{"mac":"02:00:00:00:09:01","private_ipv4s":["10.0.0.3"]}]})";
  auto claimed = ParseImportBody(Record(2) + "\n" + same_address, model::RecordLimits(), 2,
                                 exceeded);
  ASSERT_FALSE(claimed.ok());
  EXPECT_EQ(claimed.status().code(), common::Code::kConflict);
  EXPECT_EQ(claimed.status().message(),
            "line 2: address 10.0.0.3 in network \"default\" is also claimed by line 1 "
            "(instance \"i-2\")");

  auto empty = ParseImportBody("\n \n", model::RecordLimits(), 2, exceeded);
  ASSERT_FALSE(empty.ok());
  EXPECT_EQ(empty.status().message(), "import: the body holds no instances");
  EXPECT_FALSE(exceeded.has_value());
}

TEST(ImportBatchTest, ARecordOverALimitNamesTheLimit) {
  std::optional<model::Limit> exceeded;
  const std::string long_name = R"({"id":"i-2","name":")" + std::string(4097, 'n') + R"("})";
  auto over = ParseImportBody(Record(1) + "\n" + long_name, model::RecordLimits(), 2, exceeded);
  ASSERT_FALSE(over.ok());
  EXPECT_EQ(over.status().code(), common::Code::kPayloadTooLarge);
  EXPECT_EQ(over.status().message(), "line 2: /name: 4097 bytes; the limit is 4096");
  EXPECT_EQ(exceeded, model::Limit::kTextBytes);

  exceeded.reset();
  const std::string huge(model::InfoFor(model::Limit::kRecordBytes).default_value + 1, ' ');
  auto too_long = ParseImportBody(huge + "x\n", model::RecordLimits(), 2, exceeded);
  ASSERT_FALSE(too_long.ok());
  EXPECT_EQ(exceeded, model::Limit::kRecordBytes);
  EXPECT_EQ(too_long.status().message().substr(0, 10), "line 1: /:");
}

}  // namespace
}  // namespace openimds::admin
