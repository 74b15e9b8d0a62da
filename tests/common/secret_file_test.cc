#include "common/secret_file.h"

#include <gtest/gtest.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstdio>
#include <filesystem>
#include <fstream>
#include <string>

namespace openimds::common {
namespace {

// A secret no message may contain, in whole or in part.
constexpr std::string_view kSecret = "Zq7xWv9Kp2Lm8Nb4Rt6Yh3Jd";

class SecretFileTest : public ::testing::Test {
 protected:
  void SetUp() override {
    char pattern[] = "/tmp/openimds-secret-test-XXXXXX";
    ASSERT_NE(mkdtemp(pattern), nullptr);
    dir_ = pattern;
  }
  void TearDown() override { std::filesystem::remove_all(dir_); }

  std::string Write(const std::string& name, std::string_view content, mode_t mode = 0600) {
    const std::string path = dir_ + "/" + name;
    std::ofstream(path, std::ios::binary | std::ios::trunc) << content;
    EXPECT_EQ(chmod(path.c_str(), mode), 0);
    return path;
  }

  // The message of a refusal, checked for what every refusal must say (the
  // path) and must not (any 6-byte piece of the secret).
  std::string Refusal(const std::string& path, Code code) {
    auto read = ReadSecretFile(path);
    EXPECT_FALSE(read.ok()) << path;
    if (read.ok()) return "";
    EXPECT_EQ(read.status().code(), code) << read.status().ToString();
    const std::string message = read.status().message();
    EXPECT_NE(message.find(path), std::string::npos) << message;
    for (size_t i = 0; i + 6 <= kSecret.size(); ++i) {
      EXPECT_EQ(message.find(kSecret.substr(i, 6)), std::string::npos)
          << "secret bytes in: " << message;
    }
    return message;
  }

  std::string dir_;
};

TEST_F(SecretFileTest, OwnerOnlyModesAreRead) {
  for (mode_t mode : {0600, 0400}) {
    auto read = ReadSecretFile(Write("ok", kSecret, mode));
    ASSERT_TRUE(read.ok()) << std::oct << mode << ": " << read.status().ToString();
    EXPECT_EQ(*read, kSecret);
    std::filesystem::remove(dir_ + "/ok");
  }
}

TEST_F(SecretFileTest, AnyGroupOrOtherBitIsRefusedWithTheModeAndTheFix) {
  for (mode_t mode : {0644, 0640, 0604, 0620, 0602, 0610, 0601, 0660, 0666}) {
    const std::string path = Write("wide", kSecret, mode);
    const std::string message = Refusal(path, Code::kPermissionDenied);
    char octal[8];
    std::snprintf(octal, sizeof(octal), "%04o", static_cast<unsigned>(mode));
    EXPECT_NE(message.find(std::string("mode ") + octal), std::string::npos) << message;
    EXPECT_NE(message.find("chmod 600 " + path), std::string::npos) << message;
    std::filesystem::remove(path);
  }
}

TEST_F(SecretFileTest, TooShortIsRefusedAfterTrimming) {
  const std::string sixteen(kMinSecretFileBytes, 'k');
  EXPECT_TRUE(ReadSecretFile(Write("sixteen", sixteen + "\n")).ok());
  const std::string message =
      Refusal(Write("short", "  " + sixteen.substr(1) + " \n"), Code::kInvalidArgument);
  EXPECT_NE(message.find("holds 15 bytes"), std::string::npos) << message;
  EXPECT_NE(message.find("at least 16"), std::string::npos) << message;
  Refusal(Write("empty", ""), Code::kInvalidArgument);
  Refusal(Write("blank", "\n\n  \t\r\n"), Code::kInvalidArgument);
}

TEST_F(SecretFileTest, TooLargeIsRefused) {
  std::string big(kMaxSecretFileBytes, 'x');
  EXPECT_TRUE(ReadSecretFile(Write("at-cap", big)).ok());
  big.replace(0, kSecret.size(), kSecret);
  const std::string message = Refusal(Write("over-cap", big + "y"), Code::kInvalidArgument);
  EXPECT_NE(message.find("larger than 64 KiB"), std::string::npos) << message;
}

TEST_F(SecretFileTest, SurroundingWhitespaceGoesInnerStays) {
  const std::string s(kSecret);
  for (const std::string& content :
       {s + "\n", s + "\r\n", s + "\n\n", "  " + s + " \t\n", "\n" + s}) {
    auto read = ReadSecretFile(Write("ws", content));
    ASSERT_TRUE(read.ok()) << read.status().ToString();
    EXPECT_EQ(*read, s);
  }
  auto inner = ReadSecretFile(Write("inner", "k1 " + s + "\nk2 " + s + "\n"));
  ASSERT_TRUE(inner.ok());
  EXPECT_EQ(*inner, "k1 " + s + "\nk2 " + s);
}

TEST_F(SecretFileTest, MissingFileNamesThePath) {
  const std::string path = dir_ + "/absent";
  const std::string message = Refusal(path, Code::kNotFound);
  EXPECT_NE(message.find("No such file"), std::string::npos) << message;
  Refusal(dir_ + "/absent/below", Code::kNotFound);
}

TEST_F(SecretFileTest, OnlyRegularFilesAreRead) {
  Refusal(dir_, Code::kInvalidArgument);
  // A FIFO is refused at once: opening it does not wait for a writer.
  const std::string fifo = dir_ + "/fifo";
  ASSERT_EQ(mkfifo(fifo.c_str(), 0600), 0);
  const std::string message = Refusal(fifo, Code::kInvalidArgument);
  EXPECT_NE(message.find("not a regular file"), std::string::npos) << message;
}

TEST_F(SecretFileTest, SymlinksAreFollowedAndTheTargetIsChecked) {
  const std::string target = Write("target", kSecret);
  const std::string link = dir_ + "/link";
  std::filesystem::create_symlink(target, link);
  auto read = ReadSecretFile(link);
  ASSERT_TRUE(read.ok()) << read.status().ToString();
  EXPECT_EQ(*read, kSecret);
  ASSERT_EQ(chmod(target.c_str(), 0644), 0);
  const std::string message = Refusal(link, Code::kPermissionDenied);
  EXPECT_NE(message.find("mode 0644"), std::string::npos) << message;
}

TEST_F(SecretFileTest, AFileOwnedByAnotherUserIsRefused) {
  if (geteuid() != 0) GTEST_SKIP() << "needs root to give a file away";
  const std::string path = Write("theirs", kSecret);
  ASSERT_EQ(chown(path.c_str(), 65534, 65534), 0);
  const std::string message = Refusal(path, Code::kPermissionDenied);
  EXPECT_NE(message.find("owned by uid 65534"), std::string::npos) << message;
  EXPECT_NE(message.find("chown 0 " + path), std::string::npos) << message;
  // Root's files are fine for any user; here, our own.
  ASSERT_EQ(chown(path.c_str(), 0, 0), 0);
  EXPECT_TRUE(ReadSecretFile(path).ok());
}

}  // namespace
}  // namespace openimds::common
