#include "proxy/wire.h"

#include <charconv>
#include <ctime>

#include "common/http_message.h"

namespace openimds::proxy {

bool ParsedMessage::Find(std::string_view name, std::string_view& value) const {
  for (const auto& [n, v] : fields) {
    if (common::EqualsIgnoreCase(View(n), name)) {
      value = View(v);
      return true;
    }
  }
  return false;
}

int ParsedMessage::Count(std::string_view name) const {
  int n = 0;
  for (const auto& f : fields) {
    if (common::EqualsIgnoreCase(View(f.first), name)) ++n;
  }
  return n;
}

template <bool isRequest>
void MessageParser<isRequest>::on_field_impl(boost::beast::http::field f, sv name, sv value,
                                             ec_t&) {
  if constexpr (isRequest) {
    if (f == boost::beast::http::field::expect &&
        common::EqualsIgnoreCase(SV(value), "100-continue")) {
      out_.expect_continue = true;
    }
  }
  Span n = out_.Append(SV(name));
  Span v = out_.Append(SV(value));
  out_.fields.emplace_back(n, v);
}

template class MessageParser<true>;
template class MessageParser<false>;

std::string_view ReasonPhrase(int status) {
  switch (status) {
    case 100:
      return "Continue";
    case 200:
      return "OK";
    case 201:
      return "Created";
    case 204:
      return "No Content";
    case 301:
      return "Moved Permanently";
    case 302:
      return "Found";
    case 304:
      return "Not Modified";
    case 400:
      return "Bad Request";
    case 401:
      return "Unauthorized";
    case 403:
      return "Forbidden";
    case 404:
      return "Not Found";
    case 405:
      return "Method Not Allowed";
    case 408:
      return "Request Timeout";
    case 409:
      return "Conflict";
    case 411:
      return "Length Required";
    case 412:
      return "Precondition Failed";
    case 413:
      return "Payload Too Large";
    case 414:
      return "URI Too Long";
    case 429:
      return "Too Many Requests";
    case 431:
      return "Request Header Fields Too Large";
    case 500:
      return "Internal Server Error";
    case 501:
      return "Not Implemented";
    case 502:
      return "Bad Gateway";
    case 503:
      return "Service Unavailable";
    case 504:
      return "Gateway Timeout";
    default:
      return "Unknown";
  }
}

std::string_view HttpDate() {
  thread_local char buf[40];
  thread_local std::time_t last = 0;
  thread_local size_t len = 0;
  std::time_t now = std::time(nullptr);
  if (now != last) {
    std::tm tm{};
    gmtime_r(&now, &tm);
    len = std::strftime(buf, sizeof(buf), "%a, %d %b %Y %H:%M:%S GMT", &tm);
    last = now;
  }
  return std::string_view(buf, len);
}

void AppendNumber(std::string& out, uint64_t n) {
  char buf[24];
  auto r = std::to_chars(buf, buf + sizeof(buf), n);
  out.append(buf, r.ptr);
}

bool SafeHeaderText(std::string_view s) {
  for (char c : s) {
    if (c == '\r' || c == '\n' || c == '\0') return false;
  }
  return true;
}

bool StartsWithIgnoreCase(std::string_view s, std::string_view prefix) {
  return s.size() >= prefix.size() && common::EqualsIgnoreCase(s.substr(0, prefix.size()), prefix);
}

}  // namespace openimds::proxy
