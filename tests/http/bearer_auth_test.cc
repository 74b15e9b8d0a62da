#include "http/bearer_auth.h"

#include <gtest/gtest.h>
#include <stdlib.h>
#include <sys/stat.h>

#include <cstdio>
#include <filesystem>
#include <fstream>
#include <string>

namespace openimds::http {
namespace {

class TempDir {
 public:
  TempDir() {
    char pattern[] = "/tmp/openimds-bearer-test-XXXXXX";
    path_ = mkdtemp(pattern) ? pattern : "";
  }
  ~TempDir() { std::filesystem::remove_all(path_); }
  const std::string& path() const { return path_; }

 private:
  std::string path_;
};

std::string WriteFile(const std::string& path, const std::string& content, mode_t mode) {
  std::ofstream(path) << content;
  chmod(path.c_str(), mode);
  return path;
}

TEST(ReadBearerTokenFile, AcceptsOwnerOnlyFilesAndTrims) {
  TempDir dir;
  for (mode_t mode : {0600, 0400}) {
    const std::string path = WriteFile(dir.path() + "/token", "  s3cret-token-0123456789\n", mode);
    auto token = ReadBearerTokenFile(path);
    ASSERT_TRUE(token.ok()) << token.status().ToString();
    EXPECT_EQ(*token, "s3cret-token-0123456789");
    std::filesystem::remove(path);
  }
}

TEST(ReadBearerTokenFile, RefusesFilesOthersMayRead) {
  TempDir dir;
  for (mode_t mode : {0644, 0640, 0604, 0620, 0660, 0602}) {
    const std::string path = WriteFile(dir.path() + "/token", "s3cret\n", mode);
    auto token = ReadBearerTokenFile(path);
    ASSERT_FALSE(token.ok()) << std::oct << mode;
    EXPECT_EQ(token.status().code(), common::Code::kPermissionDenied);
    const std::string message = token.status().message();
    EXPECT_NE(message.find("chmod 600 " + path), std::string::npos) << message;
    char expected_mode[8];
    std::snprintf(expected_mode, sizeof(expected_mode), "%04o", static_cast<unsigned>(mode));
    EXPECT_NE(message.find(expected_mode), std::string::npos) << message;
    EXPECT_EQ(message.find("s3cret"), std::string::npos) << "the token leaked: " << message;
    std::filesystem::remove(path);
  }
}

TEST(ReadBearerTokenFile, OtherFailures) {
  TempDir dir;
  auto missing = ReadBearerTokenFile(dir.path() + "/absent");
  EXPECT_EQ(missing.status().code(), common::Code::kNotFound);
  auto empty = ReadBearerTokenFile(WriteFile(dir.path() + "/empty", "\n", 0600));
  EXPECT_EQ(empty.status().code(), common::Code::kInvalidArgument);
  auto spaced =
      ReadBearerTokenFile(WriteFile(dir.path() + "/spaced", "two words-of-a-long-token\n", 0600));
  EXPECT_EQ(spaced.status().code(), common::Code::kInvalidArgument);
  EXPECT_NE(spaced.status().message().find("one word"), std::string::npos)
      << spaced.status().message();
  EXPECT_EQ(spaced.status().message().find("words-of"), std::string::npos)
      << spaced.status().message();
  chmod(dir.path().c_str(), 0700);
  auto directory = ReadBearerTokenFile(dir.path());
  EXPECT_EQ(directory.status().code(), common::Code::kInvalidArgument);
}

}  // namespace
}  // namespace openimds::http
