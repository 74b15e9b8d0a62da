#pragma once

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <string_view>

namespace openimds::common {

enum class LogLevel { kDebug = 0, kInfo = 1, kWarn = 2, kError = 3 };

// One line to stderr: "2026-11-25T13:31:53Z WARN component: message".
// The minimum level is process-wide state set once by app/ at start-up; it is
// the one global in the project, kept because threading a logger through every
// constructor buys nothing here (stderr is already process-wide). Thread-safe:
// each line is one write(2).
void SetLogLevel(LogLevel level);
LogLevel GetLogLevel();
bool ParseLogLevel(std::string_view text, LogLevel& out);
void Log(LogLevel level, std::string_view component, std::string_view message);

// For refusals a remote peer can trigger at line rate (bad tokens, unknown
// callers, malformed requests): logs like Log(kWarn, ...) but at most
// kRefusalLinesPerSitePerSecond lines a second from each call site (`site`,
// filled in by the compiler) and kRefusalLinesPerSecond from all of them,
// so one flood neither fills the log nor hides the lines of another kind.
// What a site's budget held back is not dropped silently: once
// kRefusalSummaryPeriod has passed since the first line held back, one line
// per site says "N more refusals of kind K in the last 10 s" (K: the
// component and the call site). Counters carry the exact numbers. Every byte
// of the message outside printable ASCII (and the backslash) is written as
// \xNN, and the result is cut after about kMaxRefusalMessageBytes: such
// messages echo what a peer sent (paths, header values), which may be 8 KiB
// of anything.
inline constexpr int kRefusalLinesPerSecond = 20;
inline constexpr int kRefusalLinesPerSitePerSecond = 5;
inline constexpr std::chrono::seconds kRefusalSummaryPeriod{10};
inline constexpr size_t kMaxRefusalMessageBytes = 512;
// Where LogRefusal was called from. Not std::source_location: clang 14 (the
// fuzz build's compiler) has no <source_location> with libstdc++ 12, while
// both compilers have these builtins.
struct CallSite {
  static constexpr CallSite Here(const char* file = __builtin_FILE(),
                                 int line = __builtin_LINE()) {
    return CallSite{file, line};
  }
  const char* file_name() const { return file; }
  uint32_t line() const { return static_cast<uint32_t>(line_number); }
  const char* file;
  int line_number;
};
void LogRefusal(std::string_view component, std::string_view message,
                CallSite site = CallSite::Here());
// Writes the summary lines that are due (see LogRefusal); one atomic load
// when none is. LogRefusal calls it; so do the servers' periodic timers, so
// that a burst's summary appears even when no refusal follows it.
void FlushRefusalSummaries();

inline void LogInfo(std::string_view c, std::string_view m) { Log(LogLevel::kInfo, c, m); }
inline void LogWarn(std::string_view c, std::string_view m) { Log(LogLevel::kWarn, c, m); }
inline void LogError(std::string_view c, std::string_view m) { Log(LogLevel::kError, c, m); }

}  // namespace openimds::common
