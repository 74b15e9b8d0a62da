#pragma once

#include <cstdint>
#include <cstring>
#include <string>
#include <string_view>

#include "common/status.h"
#include "model/json_reader.h"
#include "model/str_list.h"

// Character-level rules of the record's text: valid UTF-8, no control
// characters in names, identifier alphabets, MAC syntax. Internal to the
// model module; every concept's checks use them, so every field of the record
// says the same thing about the same fault.
namespace openimds::model {

// Strict UTF-8 (no overlong forms, no surrogates, nothing above U+10FFFF):
// the number of code points, or -1.
long Utf8Length(std::string_view s);

// Any of U+0000..U+001F or U+007F.
bool HasControl(std::string_view s);

// Every character a letter, a digit or one of `extra`.
bool AllOf(std::string_view s, std::string_view extra);

// Every byte in 0x20..0x7e: valid UTF-8 and no control character. Eight
// bytes at a time: names, ids and tokens are printable ASCII, and every load
// and write of a record checks a few dozen of them.
inline bool IsPrintableAscii(std::string_view s) {
  constexpr uint64_t kOnes = 0x0101010101010101ull;
  constexpr uint64_t kHighBits = 0x8080808080808080ull;
  size_t i = 0;
  for (; i + 8 <= s.size(); i += 8) {
    uint64_t x;
    std::memcpy(&x, s.data() + i, sizeof(x));
    // A byte below 0x20 (exact for "any byte", the classic has-less test),
    // or a byte above 0x7e (adding 1 carries it into the high bit), or a
    // byte with the high bit already set.
    const uint64_t below = (x - kOnes * 0x20) & ~x & kHighBits;
    const uint64_t above = ((x & ~kHighBits) + kOnes * 0x01) | x;
    if ((below | (above & kHighBits)) != 0) return false;
  }
  for (; i < s.size(); ++i) {
    const auto c = static_cast<unsigned char>(s[i]);
    if (c < 0x20 || c > 0x7e) return false;
  }
  return true;
}

// CheckText for text that is not printable ASCII.
common::Status CheckNonAsciiText(const json_reader::Path& at, std::string_view s);

// A name or identifier that ends up in a metadata listing or a header: one
// line of valid UTF-8. "not valid UTF-8" or "contains a control character".
inline common::Status CheckText(const json_reader::Path& at, std::string_view s) {
  if (IsPrintableAscii(s)) return common::Status::Ok();
  return CheckNonAsciiText(at, s);
}

// A list of names: each entry non-empty ("empty") and passing CheckText.
common::Status CheckTextList(const json_reader::Path& at, const StrList& list);

// One line of text: "contains a control character". For the guest
// configuration's fields, whose pointers are plain strings.
common::Status CheckLine(const std::string& at, const std::string& s);

// "02:00:00:00:00:01" form, hex digits in either case.
bool IsMac(std::string_view s);

// IsMac and lower case: "not a MAC address (want 02:00:00:00:00:01 form)" or
// "not lower case".
common::Status CheckMac(const std::string& at, const std::string& mac);

// ASCII letters in lower case, every other byte as is.
std::string Lower(std::string_view s);

// The offending value as ": \"text\"" when short enough to help rather than
// flood (64 bytes at most), else "".
std::string Quoted(std::string_view text);

}  // namespace openimds::model
