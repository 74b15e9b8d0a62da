#pragma once

#include <string>
#include <string_view>

namespace openimds::flavour::ec2 {

// EC2's error page (ec2.md §1.4), served with Content-Type text/html.
// For 404 the bytes are exactly those captured on EC2. EC2's 400/401/403/405
// bodies were never captured; the same template with that code's title is
// used for them ([INF], as AEMM does).
inline constexpr std::string_view kHtmlContentType = "text/html";

// Appends the page for `http_status` ("404 - Not Found") to `out`.
void AppendErrorPage(int http_status, std::string& out);

// The reason phrase used in the page title, e.g. "Not Found"; "Error" for
// codes without one.
std::string_view ReasonPhrase(int http_status);

}  // namespace openimds::flavour::ec2
