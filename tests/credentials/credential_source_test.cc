#include "credentials/credential_source.h"

#include <gtest/gtest.h>
#include <stdlib.h>
#include <sys/stat.h>

#include <filesystem>
#include <fstream>

#include "model/instance_json.h"

namespace openimds::credentials {
namespace {

using std::chrono::seconds;

constexpr std::string_view kSecretKey = "wJalrXUtnFEMI-secret-never-logged";

const common::TimePoint kNow = std::chrono::system_clock::from_time_t(1'800'000'000);  // 2027

std::string Document(std::string_view expiration = "2099-01-01T00:00:00Z") {
  return R"({"Version": 1, "AccessKeyId": "ASIAEXAMPLE", "SecretAccessKey": ")" +
         std::string(kSecretKey) + R"(", "SessionToken": "token", "Expiration": ")" +
         std::string(expiration) + R"("})";
}

TEST(ParseCredentialProcessOutputTest, AcceptsTheAwsCliFormat) {
  auto c = ParseCredentialProcessOutput(Document(), kNow, seconds(300));
  ASSERT_TRUE(c.ok()) << c.status().ToString();
  EXPECT_EQ(c->access_key_id, "ASIAEXAMPLE");
  EXPECT_EQ(c->secret_access_key, kSecretKey);
  EXPECT_EQ(c->token, "token");
  EXPECT_EQ(c->last_updated, kNow);
}

TEST(ParseCredentialProcessOutputTest, RefusalsSayWhichFieldNeverItsValue) {
  struct Case {
    std::string text;
    std::string says;
  } cases[] = {
      {"not json", "not a JSON object"},
      {"[]", "not a JSON object"},
      {R"({"Version": 2})", "\"Version\" must be 1"},
      {R"({"Version": 1, "AccessKeyId": "A", "SecretAccessKey": ")" + std::string(kSecretKey) +
           R"("})",
       "\"SessionToken\""},
      {R"({"Version": 1, "AccessKeyId": "A", "SecretAccessKey": ")" + std::string(kSecretKey) +
           R"(\n", "SessionToken": "t", "Expiration": "2099-01-01T00:00:00Z"})",
       "\"SecretAccessKey\" has control characters"},
      {Document("2099-13-01"), "not an RFC 3339 time"},
      // Within refresh_before of now: it would need refreshing at once.
      {Document("2027-01-15T08:04:00Z"), "is not after now + 300 s"},
  };
  for (const Case& c : cases) {
    auto r = ParseCredentialProcessOutput(c.text, kNow, seconds(300));
    ASSERT_FALSE(r.ok()) << c.text;
    EXPECT_EQ(r.status().code(), common::Code::kInvalidArgument);
    EXPECT_NE(r.status().message().find(c.says), std::string::npos) << r.status().message();
    EXPECT_EQ(r.status().message().find(kSecretKey), std::string::npos) << r.status().message();
  }
}

// The real thing: shell scripts as the operator's command, run by RefreshOnce.
class CredentialSourceTest : public ::testing::Test {
 protected:
  void SetUp() override {
    char pattern[] = "/tmp/openimds-credentials-test-XXXXXX";
    ASSERT_NE(mkdtemp(pattern), nullptr);
    dir_ = pattern;
  }
  void TearDown() override { std::filesystem::remove_all(dir_); }

  std::string Script(const std::string& body) {
    const std::string path = dir_ + "/source-" + std::to_string(++scripts_) + ".sh";
    std::ofstream(path) << "#!/bin/sh\n" << body << "\n";
    chmod(path.c_str(), 0755);
    return path;
  }

  void AddInstance(const std::string& id, const std::string& role) {
    std::string json = R"({"id":")" + id + R"(","network":"n","region":"eu-1")";
    if (!role.empty()) json += R"(,"iam":{"role":")" + role + R"("})";
    auto in = model::FromJsonText(json + "}");
    ASSERT_TRUE(in.ok()) << in.status().ToString();
    catalog_.Upsert(catalog::Entry{std::make_shared<const model::Instance>(std::move(*in)), 1});
  }

  std::unique_ptr<CredentialSource> Source(const std::string& command,
                                           std::chrono::milliseconds timeout = seconds(30),
                                           size_t max_output_bytes = 64 * 1024) {
    CredentialSource::Options o;
    o.command = command;
    o.timeout = timeout;
    o.max_output_bytes = max_output_bytes;
    return std::make_unique<CredentialSource>(o, catalog_, clock_, metrics_);
  }

  uint64_t Runs(std::string_view result) {
    return metrics_
        .GetCounter("credential_source_runs_total", "", "result=\"" + std::string(result) + "\"")
        .Value();
  }

  const model::Instance& Instance(const std::string& id) {
    return *catalog_.Current()->FindById(id)->instance;
  }

  std::string dir_;
  int scripts_ = 0;
  common::FakeClock clock_{kNow};
  common::MetricsRegistry metrics_;
  catalog::Catalog catalog_;
};

TEST_F(CredentialSourceTest, RunsTheCommandPerInstanceWithARole) {
  // argv and environment as documented; the output names what the command saw.
  auto source = Source(
      Script(R"(printf '{"Version":1,"AccessKeyId":"%s","SecretAccessKey":"s","SessionToken":"%s",)"
             R"("Expiration":"2099-01-01T00:00:00Z"}' "$1-$2" "$OPENIMDS_ROLE-$OPENIMDS_REGION")"));
  AddInstance("i-1", "role-a");
  AddInstance("i-2", "");
  source->RefreshOnce();
  auto creds = source->Find(Instance("i-1"));
  ASSERT_NE(creds, nullptr);
  EXPECT_EQ(creds->access_key_id, "i-1-role-a");
  EXPECT_EQ(creds->token, "role-a-eu-1");
  EXPECT_EQ(source->Find(Instance("i-2")), nullptr);
  EXPECT_EQ(Runs("ok"), 1u);
  source->RefreshOnce();  // still fresh: not run again
  EXPECT_EQ(Runs("ok"), 1u);
}

TEST_F(CredentialSourceTest, AFailedRunBacksOff) {
  auto source = Source(Script("echo 'no such role' >&2; exit 3"));
  AddInstance("i-1", "role-a");
  source->RefreshOnce();
  EXPECT_EQ(source->Find(Instance("i-1")), nullptr);
  EXPECT_EQ(Runs("failed"), 1u);
  source->RefreshOnce();  // within the backoff
  EXPECT_EQ(Runs("failed"), 1u);
  clock_.Advance(seconds(6));
  source->RefreshOnce();
  EXPECT_EQ(Runs("failed"), 2u);
}

TEST_F(CredentialSourceTest, TimeoutAndOversizedOutputAreCounted) {
  AddInstance("i-1", "role-a");
  auto slow = Source(Script("exec sleep 600"), std::chrono::milliseconds(200));
  slow->RefreshOnce();
  EXPECT_EQ(Runs("timeout"), 1u);
  auto chatty = Source(Script("exec yes"), seconds(600), 1000);
  chatty->RefreshOnce();
  EXPECT_EQ(Runs("invalid"), 1u);
  EXPECT_EQ(Runs("timeout"), 1u);  // the cap ended it, not the timeout
  auto bad = Source(Script("echo '{\"Version\": 1}'"));
  bad->RefreshOnce();
  EXPECT_EQ(Runs("invalid"), 2u);
  EXPECT_EQ(bad->Find(Instance("i-1")), nullptr);
}

}  // namespace
}  // namespace openimds::credentials
