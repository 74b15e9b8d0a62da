#pragma once

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

// A name or identifier that ends up in a metadata listing or a header: one
// line of valid UTF-8. "not valid UTF-8" or "contains a control character".
common::Status CheckText(const json_reader::Path& at, std::string_view s);

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
