#pragma once

// The server's response writer: a common::Response serialised into the
// connection's output buffer (status line, headers and body in one piece, so
// they leave in one write), the non-blocking send of that buffer, and the
// plain-text answers the core makes itself. Internal to the http module.

#include <string>
#include <string_view>

#include "common/http_message.h"

namespace openimds::http {

// True if `s` may be written into a header line as is (no CR, LF or NUL).
bool SafeHeaderText(std::string_view s);

// Appends `r` as an HTTP/`version` (10 or 11) response to `out` (pipelined
// responses are coalesced into one write): status line, Date, Content-Type
// and Content-Length (none for 204 and 304), `r.headers`, the connection
// header `keep_alive` calls for, then the body unless `r.head`. The
// handler's headers must have passed SafeHeaderText.
void Serialize(const common::Response& r, int version, bool keep_alive, std::string& out);

// Sends what it can of `data` on the non-blocking descriptor `fd` without
// waiting and leaves the rest in it; false if the connection failed.
// `extra_flags` adds to MSG_NOSIGNAL | MSG_DONTWAIT (e.g. MSG_MORE).
bool SendNow(int fd, std::string_view& data, int extra_flags = 0);

// Replaces `r` with a plain-text `status` answer whose body is `message`
// and a newline, closing the connection after it.
void SimpleError(common::Response& r, int status, std::string_view message);

}  // namespace openimds::http
