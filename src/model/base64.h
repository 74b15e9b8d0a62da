#pragma once

#include <string>
#include <string_view>

// Base64 for user_data on the model's hot paths (every record the store loads
// and every record an import writes carries up to its user-data limit of it).
// Internal to the model module.
namespace openimds::model {

// Decodes `text` into `out` (replacing its contents) with exactly the contract
// of common::Base64Decode: standard alphabet with padding, ASCII whitespace
// (space, \t, \r, \n) skipped anywhere, and false on any other character, data
// after padding, more than two '=', a truncated quantum or non-zero leftover
// bits. One allocation; four characters at a time while the input is plain.
// On false, `out` holds unspecified bytes.
bool Base64DecodeTo(std::string_view text, std::string& out);

// Appends the encoding of `bytes` to `out`: byte for byte what
// common::Base64Encode returns.
void AppendBase64(std::string_view bytes, std::string& out);

}  // namespace openimds::model
