#include "http/wire_format.h"

#include "common/http_message.h"

#include <net/if.h>

#include <array>
#include <charconv>
#include <cstring>
#include <ctime>

namespace openimds::http {

std::string_view ReasonPhrase(int status) {
  switch (status) {
    case 100: return "Continue";
    case 200: return "OK";
    case 201: return "Created";
    case 204: return "No Content";
    case 301: return "Moved Permanently";
    case 302: return "Found";
    case 304: return "Not Modified";
    case 400: return "Bad Request";
    case 401: return "Unauthorized";
    case 403: return "Forbidden";
    case 404: return "Not Found";
    case 405: return "Method Not Allowed";
    case 408: return "Request Timeout";
    case 409: return "Conflict";
    case 411: return "Length Required";
    case 412: return "Precondition Failed";
    case 413: return "Payload Too Large";
    case 414: return "URI Too Long";
    case 415: return "Unsupported Media Type";
    case 429: return "Too Many Requests";
    case 431: return "Request Header Fields Too Large";
    case 500: return "Internal Server Error";
    case 501: return "Not Implemented";
    case 502: return "Bad Gateway";
    case 503: return "Service Unavailable";
    case 504: return "Gateway Timeout";
    case 507: return "Insufficient Storage";
    default: return "Unknown";
  }
}

// "Wed, 25 Nov 2026 13:31:53 GMT", formatted at most once a second per thread.
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
  // (pointer, length): append(first, last) is the iterator-range overload,
  // which builds a temporary string.
  out.append(buf, static_cast<size_t>(r.ptr - buf));
}

common::Result<boost::asio::ip::tcp::endpoint> ParseTcpEndpoint(std::string_view text) {
  std::string_view host, port;
  if (!text.empty() && text.front() == '[') {
    auto close = text.find(']');
    if (close == std::string_view::npos || close + 1 >= text.size() || text[close + 1] != ':') {
      return common::InvalidArgument("bad endpoint '" + std::string(text) + "' (want [addr]:port)");
    }
    host = text.substr(1, close - 1);
    port = text.substr(close + 2);
  } else {
    auto colon = text.rfind(':');
    if (colon == std::string_view::npos) {
      return common::InvalidArgument("bad endpoint '" + std::string(text) + "' (want addr:port)");
    }
    host = text.substr(0, colon);
    port = text.substr(colon + 1);
  }
  unsigned p = 0;
  auto r = std::from_chars(port.data(), port.data() + port.size(), p);
  if (r.ec != std::errc() || r.ptr != port.data() + port.size() || p > 65535) {
    return common::InvalidArgument("bad port in endpoint '" + std::string(text) + "'");
  }
  // An IPv6 link-local address means nothing without its link: "%IFACE"
  // (or "%INDEX") names it, as in fe80::a9fe:a9fe%eth0. The zone is resolved
  // here, in the caller's network namespace, so a missing interface is a
  // clear error at start-up rather than EINVAL from bind().
  std::string_view zone;
  if (const size_t percent = host.find('%'); percent != std::string_view::npos) {
    zone = host.substr(percent + 1);
    host = host.substr(0, percent);
    if (zone.empty()) {
      return common::InvalidArgument("empty scope after '%' in endpoint '" + std::string(text) +
                                     "'");
    }
  }
  boost::system::error_code ec;
  auto addr = boost::asio::ip::make_address(std::string(host), ec);
  if (ec) {
    return common::InvalidArgument("bad address in endpoint '" + std::string(text) + "'");
  }
  const bool link_local = addr.is_v6() && addr.to_v6().is_link_local();
  if (link_local) {
    if (zone.empty()) {
      return common::InvalidArgument("IPv6 link-local endpoint '" + std::string(text) +
                                     "' needs its interface: [" + std::string(host) +
                                     "%IFACE]:PORT");
    }
    unsigned scope = if_nametoindex(std::string(zone).c_str());
    if (scope == 0) {
      const auto n = std::from_chars(zone.data(), zone.data() + zone.size(), scope);
      char name[IF_NAMESIZE];
      if (n.ec != std::errc() || n.ptr != zone.data() + zone.size() ||
          if_indextoname(scope, name) == nullptr) {
        scope = 0;
      }
    }
    if (scope == 0) {
      return common::InvalidArgument("no network interface '" + std::string(zone) +
                                     "' for endpoint '" + std::string(text) + "'");
    }
    auto v6 = addr.to_v6();
    v6.scope_id(scope);
    addr = v6;
  } else if (!zone.empty()) {
    return common::InvalidArgument("a scope ('%" + std::string(zone) +
                                   "') goes only with an IPv6 link-local address, not in '" +
                                   std::string(text) + "'");
  }
  return boost::asio::ip::tcp::endpoint(addr, static_cast<unsigned short>(p));
}

common::IpAddress ToIpAddress(const boost::asio::ip::address& a) {
  if (a.is_v4()) return common::IpAddress::FromV4(a.to_v4().to_uint());
  auto b = a.to_v6().to_bytes();
  std::array<uint8_t, 16> arr;
  std::memcpy(arr.data(), b.data(), 16);
  return common::IpAddress::FromV6Bytes(arr);
}

bool AcceptableTransferEncoding(int count, std::string_view value) {
  if (count == 0) return true;
  if (count > 1) return false;
  while (!value.empty() && (value.front() == ' ' || value.front() == '\t')) value.remove_prefix(1);
  while (!value.empty() && (value.back() == ' ' || value.back() == '\t')) value.remove_suffix(1);
  return common::EqualsIgnoreCase(value, "chunked");
}

}  // namespace openimds::http
