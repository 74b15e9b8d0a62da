#pragma once

#include <cstddef>
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
// kRefusalLinesPerSecond lines a second process-wide; the next line that
// gets through says how many were suppressed. Counters carry the exact
// numbers; this keeps one line per refusal without letting a guest flood
// the log. Every byte of the message outside printable ASCII (and the
// backslash) is written as \xNN, and the result is cut after about
// kMaxRefusalMessageBytes: such messages echo what a peer sent (paths,
// header values), which may be 8 KiB of anything.
inline constexpr int kRefusalLinesPerSecond = 20;
inline constexpr size_t kMaxRefusalMessageBytes = 512;
void LogRefusal(std::string_view component, std::string_view message);

inline void LogInfo(std::string_view c, std::string_view m) { Log(LogLevel::kInfo, c, m); }
inline void LogWarn(std::string_view c, std::string_view m) { Log(LogLevel::kWarn, c, m); }
inline void LogError(std::string_view c, std::string_view m) { Log(LogLevel::kError, c, m); }

}  // namespace openimds::common
