#pragma once

#include <cstdio>
#include <cstdlib>
#include <string>
#include <string_view>

// Invariant checks for the fuzz targets. A failed check prints what was
// expected and aborts, which libFuzzer reports as a crash (and saves the
// input) and the replay test reports as a failure. Not assert(): NDEBUG
// would remove it from the RelWithDebInfo replay build.
#define FUZZ_CHECK(cond, what)                                                      \
  do {                                                                              \
    if (!(cond)) ::openimds::fuzz::Fail(#cond, (what), __FILE__, __LINE__);        \
  } while (0)

namespace openimds::fuzz {

[[noreturn]] inline void Fail(const char* cond, std::string_view what, const char* file,
                              int line) {
  std::fprintf(stderr, "%s:%d: invariant broken: %s\n  %.*s\n", file, line, cond,
               static_cast<int>(what.size()), what.data());
  std::abort();
}

// Printable text for a failure message: bytes outside printable ASCII as \xNN,
// cut after `limit` characters.
inline std::string Printable(std::string_view s, size_t limit = 400) {
  static const char kHex[] = "0123456789abcdef";
  std::string out;
  for (char c : s) {
    if (out.size() >= limit) {
      out += "...";
      break;
    }
    const auto u = static_cast<unsigned char>(c);
    if (u >= 0x20 && u < 0x7f) {
      out += c;
    } else {
      out += "\\x";
      out += kHex[u >> 4];
      out += kHex[u & 15];
    }
  }
  return out;
}

// Takes the next line (without its '\n') off the front of `rest`; the targets
// read their inputs as a few newline-separated fields.
inline std::string_view NextLine(std::string_view& rest) {
  const size_t nl = rest.find('\n');
  std::string_view line = rest.substr(0, nl);
  rest = nl == std::string_view::npos ? std::string_view() : rest.substr(nl + 1);
  return line;
}

}  // namespace openimds::fuzz
