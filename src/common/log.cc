#include "common/log.h"

#include <algorithm>

#include <unistd.h>

#include <atomic>
#include <chrono>
#include <string>

#include "common/time_format.h"

namespace openimds::common {
namespace {
std::atomic<int> g_level{static_cast<int>(LogLevel::kInfo)};
}

void SetLogLevel(LogLevel level) { g_level.store(static_cast<int>(level)); }
LogLevel GetLogLevel() { return static_cast<LogLevel>(g_level.load()); }

bool ParseLogLevel(std::string_view text, LogLevel& out) {
  if (text == "debug") out = LogLevel::kDebug;
  else if (text == "info") out = LogLevel::kInfo;
  else if (text == "warn") out = LogLevel::kWarn;
  else if (text == "error") out = LogLevel::kError;
  else return false;
  return true;
}

void Log(LogLevel level, std::string_view component, std::string_view message) {
  if (static_cast<int>(level) < g_level.load(std::memory_order_relaxed)) return;
  static constexpr const char* kNames[] = {"DEBUG", "INFO", "WARN", "ERROR"};
  std::string line = FormatRfc3339(std::chrono::system_clock::now());
  line += ' ';
  line += kNames[static_cast<int>(level)];
  line += ' ';
  line += component;
  line += ": ";
  // One line per event: newlines in messages (e.g. echoing bad input) are escaped.
  for (char c : message) {
    if (c == '\n') line += "\\n";
    else if (c == '\r') line += "\\r";
    else line += c;
  }
  line += '\n';
  ssize_t ignored = ::write(STDERR_FILENO, line.data(), line.size());
  (void)ignored;
}

void LogRefusal(std::string_view component, std::string_view message) {
  if (static_cast<int>(LogLevel::kWarn) < g_level.load(std::memory_order_relaxed)) return;
  static std::atomic<int64_t> window{0};
  static std::atomic<int> used{0};
  static std::atomic<int64_t> suppressed{0};
  const int64_t now = std::chrono::duration_cast<std::chrono::seconds>(
                          std::chrono::steady_clock::now().time_since_epoch())
                          .count();
  int64_t w = window.load(std::memory_order_relaxed);
  if (w != now && window.compare_exchange_strong(w, now)) used.store(0);
  if (used.fetch_add(1, std::memory_order_relaxed) >= kRefusalLinesPerSecond) {
    suppressed.fetch_add(1, std::memory_order_relaxed);
    return;
  }
  const int64_t dropped = suppressed.exchange(0);
  std::string line;
  line.reserve(std::min(message.size(), kMaxRefusalMessageBytes) + 64);
  static constexpr char kHex[] = "0123456789abcdef";
  size_t i = 0;
  for (; i < message.size() && line.size() < kMaxRefusalMessageBytes; ++i) {
    const auto c = static_cast<unsigned char>(message[i]);
    if (c >= 0x20 && c < 0x7f && c != '\\') {
      line += static_cast<char>(c);
    } else {
      line += "\\x";
      line += kHex[c >> 4];
      line += kHex[c & 15];
    }
  }
  if (i < message.size()) line += "... (" + std::to_string(message.size() - i) + " bytes cut)";
  if (dropped == 0) {
    Log(LogLevel::kWarn, component, line);
    return;
  }
  line += " (";
  line += std::to_string(dropped);
  line += " similar lines suppressed)";
  Log(LogLevel::kWarn, component, line);
}

}  // namespace openimds::common
