#include "common/ready_file.h"

#include <gtest/gtest.h>
#include <stdlib.h>

#include <filesystem>
#include <fstream>
#include <iterator>
#include <string>

namespace openimds::common {
namespace {

class ReadyFileTest : public ::testing::Test {
 protected:
  void SetUp() override {
    char pattern[] = "/tmp/openimds-ready-test-XXXXXX";
    ASSERT_NE(mkdtemp(pattern), nullptr);
    dir_ = pattern;
  }
  void TearDown() override { std::filesystem::remove_all(dir_); }
  static std::string Read(const std::string& path) {
    std::ifstream in(path);
    return std::string((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  }
  std::string dir_;
};

TEST_F(ReadyFileTest, WritesWholeAndLeavesNoTemporary) {
  const std::string path = dir_ + "/ready.json";
  ASSERT_TRUE(WriteReadyFile(path, "{\"pid\":1}\n").ok());
  EXPECT_EQ(Read(path), "{\"pid\":1}\n");
  // A stale file from an earlier run is replaced, not appended to.
  ASSERT_TRUE(WriteReadyFile(path, "{}\n").ok());
  EXPECT_EQ(Read(path), "{}\n");
  EXPECT_FALSE(std::filesystem::exists(path + ".tmp"));
}

TEST_F(ReadyFileTest, AnUnwritablePathIsAnErrorNamingIt) {
  const std::string path = dir_ + "/no-such-dir/ready.json";
  Status s = WriteReadyFile(path, "{}\n");
  ASSERT_FALSE(s.ok());
  EXPECT_EQ(s.code(), Code::kInternal);
  EXPECT_NE(s.message().find(path), std::string::npos) << s.message();
  EXPECT_NE(s.message().find("No such file or directory"), std::string::npos) << s.message();
  // The rename fails when PATH is a directory: the temporary does not stay.
  const std::string dir_path = dir_ + "/a-directory";
  std::filesystem::create_directories(dir_path + "/inside");
  ASSERT_FALSE(WriteReadyFile(dir_path, "{}\n").ok());
  EXPECT_FALSE(std::filesystem::exists(dir_path + ".tmp"));
}

}  // namespace
}  // namespace openimds::common
