#pragma once

// Test data under tests/testdata, and golden files compared byte for byte.

#include <gtest/gtest.h>

#include <cstdlib>
#include <fstream>
#include <sstream>
#include <string>

namespace openimds::testdata {

// The whole file, or "" if it cannot be read (the comparison then fails).
inline std::string ReadFile(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::ostringstream s;
  s << in.rdbuf();
  return s.str();
}

// tests/testdata/<relative>
inline std::string Path(const std::string& relative) {
  return std::string(OPENIMDS_TESTDATA_DIR) + "/" + relative;
}

// Compares with tests/testdata/<relative>.golden; OPENIMDS_UPDATE_GOLDEN=1
// rewrites it instead (review the diff before committing it).
inline void ExpectGolden(const std::string& relative, const std::string& actual) {
  const std::string path = Path(relative) + ".golden";
  if (std::getenv("OPENIMDS_UPDATE_GOLDEN") != nullptr) {
    std::ofstream(path, std::ios::binary) << actual;
  }
  EXPECT_EQ(actual, ReadFile(path)) << "golden " << path;
}

}  // namespace openimds::testdata
