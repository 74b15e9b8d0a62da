#pragma once

#include <optional>
#include <string>
#include <string_view>

namespace openimds::common {

// Standard base64 (RFC 4648 §4) with padding, no line breaks.
std::string Base64Encode(std::string_view bytes);
// Base64 with a line break every `line_width` characters and none at the end
// (EC2's MIME-style wrapping of signatures).
std::string Base64EncodeWrapped(std::string_view bytes, int line_width);
// Strict decode of standard base64; ASCII whitespace is skipped (wrapped input).
// nullopt on any other character, bad padding or a truncated quantum.
std::optional<std::string> Base64Decode(std::string_view text);
// URL-safe alphabet (RFC 4648 §5), no padding: token encoding.
std::string Base64UrlEncode(std::string_view bytes);
std::optional<std::string> Base64UrlDecode(std::string_view text);

std::string HexEncode(std::string_view bytes);
// The value of one hex digit (either case), or -1.
int HexValue(char c);

}  // namespace openimds::common
