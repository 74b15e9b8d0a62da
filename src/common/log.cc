#include "common/log.h"

#include <unistd.h>

#include <algorithm>
#include <array>
#include <atomic>
#include <chrono>
#include <cstdint>
#include <mutex>
#include <string>
#include <utility>
#include <vector>

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

namespace {

// One call site of LogRefusal and what its budget held back.
struct RefusalSite {
  const char* file = nullptr;  // CallSite::file_name(): one pointer per site
  uint32_t line = 0;
  std::string component;
  int64_t second = 0;  // the second `used` counts in
  int used = 0;        // lines written in that second
  uint64_t held = 0;   // lines held back since the last summary
};

// Sites beyond this share the last entry (the code has about forty).
constexpr size_t kMaxSites = 128;

struct RefusalState {
  std::mutex mu;
  std::array<RefusalSite, kMaxSites> sites;  // guarded by mu
  size_t count = 0;                          // guarded by mu
  int64_t second = 0;                        // guarded by mu
  int used = 0;                              // lines of all sites in `second`; guarded by mu
  // When the pending summaries are due (steady ns); INT64_MAX: none pending.
  std::atomic<int64_t> summary_due{INT64_MAX};
};

RefusalState& Refusals() {
  static RefusalState state;  // part of the log's one process-wide state
  return state;
}

int64_t SteadyNs() {
  return std::chrono::duration_cast<std::chrono::nanoseconds>(
             std::chrono::steady_clock::now().time_since_epoch())
      .count();
}

std::string_view BaseName(const char* file) {
  std::string_view f(file);
  const size_t slash = f.rfind('/');
  return slash == std::string_view::npos ? f : f.substr(slash + 1);
}

// Under state.mu: the entry of `site`, made on its first line.
RefusalSite& SiteOf(RefusalState& state, std::string_view component,
                    const CallSite& site) {
  for (size_t i = 0; i < state.count; ++i) {
    RefusalSite& s = state.sites[i];
    if (s.line == site.line() &&
        (s.file == site.file_name() || std::string_view(s.file) == site.file_name())) {
      return s;
    }
  }
  if (state.count == kMaxSites) return state.sites[kMaxSites - 1];
  RefusalSite& s = state.sites[state.count++];
  s.file = site.file_name();
  s.line = site.line();
  s.component.assign(component);
  return s;
}

}  // namespace

void FlushRefusalSummaries() {
  RefusalState& state = Refusals();
  const int64_t now = SteadyNs();
  if (now < state.summary_due.load(std::memory_order_relaxed)) return;
  std::vector<std::pair<std::string, std::string>> lines;  // (component, text)
  {
    std::lock_guard<std::mutex> lock(state.mu);
    if (now < state.summary_due.load(std::memory_order_relaxed)) return;
    state.summary_due.store(INT64_MAX, std::memory_order_relaxed);
    for (size_t i = 0; i < state.count; ++i) {
      RefusalSite& s = state.sites[i];
      if (s.held == 0) continue;
      lines.emplace_back(s.component, std::to_string(s.held) + " more refusals of kind " +
                                          s.component + " (" + std::string(BaseName(s.file)) + ":" +
                                          std::to_string(s.line) + ") in the last " +
                                          std::to_string(kRefusalSummaryPeriod.count()) + " s");
      s.held = 0;
    }
  }
  for (const auto& [component, text] : lines) Log(LogLevel::kWarn, component, text);
}

void LogRefusal(std::string_view component, std::string_view message, CallSite site) {
  if (static_cast<int>(LogLevel::kWarn) < g_level.load(std::memory_order_relaxed)) return;
  RefusalState& state = Refusals();
  const int64_t now = SteadyNs();
  const int64_t second = now / 1'000'000'000;
  {
    std::lock_guard<std::mutex> lock(state.mu);
    RefusalSite& s = SiteOf(state, component, site);
    if (s.second != second) {
      s.second = second;
      s.used = 0;
    }
    if (state.second != second) {
      state.second = second;
      state.used = 0;
    }
    if (s.used >= kRefusalLinesPerSitePerSecond || state.used >= kRefusalLinesPerSecond) {
      ++s.held;
      if (state.summary_due.load(std::memory_order_relaxed) == INT64_MAX) {
        state.summary_due.store(
            now +
                std::chrono::duration_cast<std::chrono::nanoseconds>(kRefusalSummaryPeriod).count(),
            std::memory_order_relaxed);
      }
      return;
    }
    ++s.used;
    ++state.used;
  }
  FlushRefusalSummaries();
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
  Log(LogLevel::kWarn, component, line);
}

}  // namespace openimds::common
