#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

#include <boost/json/value.hpp>

#include "common/http_message.h"
#include "common/result.h"
#include "common/status.h"

// The HTTP pieces every admin route uses: JSON bodies in and out, the media
// type, the refusals routes share (405, "takes no query parameters"), ids in
// URLs, and text made safe for a log line. Internal to the admin module.
namespace openimds::admin {

// The component name of the admin API's log lines.
inline constexpr std::string_view kComponent = "admin";
inline constexpr std::string_view kJson = "application/json";
inline constexpr std::string_view kInstancesPrefix = "/v1/instances/";

bool IsGetOrHead(std::string_view method);

// Ids are [A-Za-z0-9._:-]{1,128} (model/instance.h); checked on the URL too
// so that a URL with anything else is refused before any parsing or store
// access.
bool IsValidId(std::string_view id);

// Without leading spaces and tabs, nor trailing spaces, tabs and CRs.
std::string_view Trim(std::string_view s);

// Log lines carry operator-sent text (paths, ids); control bytes would let it
// forge extra lines: each becomes '?'.
std::string Printable(std::string_view text);

// "\"s\"".
std::string Quote(std::string_view s);

// A decimal integer > 0 and nothing else, or nullopt.
std::optional<int64_t> ParsePositive(std::string_view text);

// A JSON document; a syntax error is InvalidArgument in the same words as
// model::FromJsonText's ("invalid JSON: ... at offset N"), so every syntax
// error reads alike.
common::Result<boost::json::value> ParseJson(std::string_view text);

// `body` serialised, with a newline, as application/json.
void WriteJson(common::Response& out, int status, const boost::json::value& body);

// The media type of the request body, lower-cased, without parameters; ""
// without a Content-Type.
std::string MediaType(const common::Request& request);

// MethodNotAllowed naming the method, the path and `allow`, which also goes
// into an Allow header of `out`.
common::Status MethodNotAllowed(const common::Request& request, std::string_view allow,
                                common::Response& out);

// InvalidArgument "<path> takes no query parameters" when the request has a
// query.
common::Status NoQuery(const common::Request& request);

}  // namespace openimds::admin
