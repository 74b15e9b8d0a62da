#include "model/text_checks.h"

#include <algorithm>
#include <cstdint>
#include <cstring>

namespace openimds::model {
namespace {

using common::Status;
using json_reader::Err;
using json_reader::Path;

// Boost.JSON refuses invalid UTF-8 on input, but an Instance built in code may
// carry anything; serialising such a string would write a document that no
// parser reads back. The scan goes eight bytes at a time for the common case.
bool IsAscii(std::string_view s) {
  constexpr uint64_t kHighBits = 0x8080808080808080ull;
  size_t i = 0;
  uint64_t any = 0;
  for (; i + 8 <= s.size(); i += 8) {
    uint64_t x;
    std::memcpy(&x, s.data() + i, sizeof(x));
    any |= x;
  }
  for (; i < s.size(); ++i) any |= static_cast<unsigned char>(s[i]);
  return (any & kHighBits) == 0;
}

bool IsHex(char c) {
  return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F');
}

}  // namespace

long Utf8Length(std::string_view s) {
  if (IsAscii(s)) return static_cast<long>(s.size());
  long n = 0;
  size_t i = 0;
  while (i < s.size()) {
    const auto c = static_cast<unsigned char>(s[i]);
    size_t len;
    uint32_t cp;
    if (c < 0x80) {
      len = 1;
      cp = c;
    } else if ((c & 0xe0) == 0xc0) {
      len = 2;
      cp = c & 0x1f;
    } else if ((c & 0xf0) == 0xe0) {
      len = 3;
      cp = c & 0x0f;
    } else if ((c & 0xf8) == 0xf0) {
      len = 4;
      cp = c & 0x07;
    } else {
      return -1;
    }
    if (i + len > s.size()) return -1;
    for (size_t k = 1; k < len; ++k) {
      const auto cc = static_cast<unsigned char>(s[i + k]);
      if ((cc & 0xc0) != 0x80) return -1;
      cp = (cp << 6) | (cc & 0x3f);
    }
    static constexpr uint32_t kMinForLen[] = {0, 0, 0x80, 0x800, 0x10000};
    if (cp < kMinForLen[len] || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff)) return -1;
    i += len;
    ++n;
  }
  return n;
}

bool HasControl(std::string_view s) {
  return std::any_of(s.begin(), s.end(), [](char c) {
    const auto u = static_cast<unsigned char>(c);
    return u < 0x20 || u == 0x7f;
  });
}

bool AllOf(std::string_view s, std::string_view extra) {
  return std::all_of(s.begin(), s.end(), [extra](char c) {
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
           extra.find(c) != std::string_view::npos;
  });
}

Status CheckNonAsciiText(const Path& at, std::string_view s) {
  if (Utf8Length(s) < 0) return Err(at, "not valid UTF-8");
  if (HasControl(s)) return Err(at, "contains a control character");
  return Status::Ok();
}

Status CheckTextList(const Path& at, const StrList& list) {
  for (size_t i = 0; i < list.size(); ++i) {
    const Path p(at, i);
    if (list[i].empty()) return Err(p, "empty");
    if (Status s = CheckText(p, list[i]); !s.ok()) return s;
  }
  return Status::Ok();
}

Status CheckLine(const std::string& at, const std::string& s) {
  for (char c : s) {
    const auto u = static_cast<unsigned char>(c);
    if (u < 0x20 || u == 0x7f) return Err(at, "contains a control character");
  }
  return Status::Ok();
}

bool IsMac(std::string_view s) {
  if (s.size() != 17) return false;
  for (size_t i = 0; i < s.size(); ++i) {
    if (i % 3 == 2 ? s[i] != ':' : !IsHex(s[i])) return false;
  }
  return true;
}

Status CheckMac(const std::string& at, const std::string& mac) {
  if (!IsMac(mac)) return Err(at, "not a MAC address (want 02:00:00:00:00:01 form)");
  if (Lower(mac) != mac) return Err(at, "not lower case");
  return Status::Ok();
}

std::string Lower(std::string_view s) {
  std::string out(s);
  for (char& c : out) {
    if (c >= 'A' && c <= 'Z') c = static_cast<char>(c - 'A' + 'a');
  }
  return out;
}

std::string Quoted(std::string_view text) {
  if (text.size() > 64) return "";
  return ": \"" + std::string(text) + "\"";
}

}  // namespace openimds::model
