#pragma once

#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "common/result.h"

namespace openimds::admin {

// Decodes %XX escapes (either hex case). With `plus_is_space` a '+' becomes a
// space (application/x-www-form-urlencoded, used in query strings).
// nullopt on a truncated or non-hex escape, or an escape that decodes to NUL.
std::optional<std::string> PercentDecode(std::string_view text, bool plus_is_space = false);

// One decoded query parameter; a parameter without '=' has an empty value.
using QueryParam = std::pair<std::string, std::string>;

// Splits `query` (the part after '?', without it) on '&' and decodes names and
// values. Empty pieces ("a=1&&b=2") are skipped. InvalidArgument on a bad escape,
// naming the parameter.
common::Result<std::vector<QueryParam>> ParseQuery(std::string_view query);

}  // namespace openimds::admin
