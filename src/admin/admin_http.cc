#include "admin/admin_http.h"

#include <algorithm>
#include <cctype>
#include <charconv>

#include <boost/json/serialize.hpp>
#include <boost/json/stream_parser.hpp>

namespace openimds::admin {

using common::Code;
using common::Request;
using common::Response;
using common::Status;

namespace {

constexpr size_t kMaxIdBytes = 128;

bool IsIdChar(char c) {
  return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '.' ||
         c == '_' || c == ':' || c == '-';
}

}  // namespace

bool IsGetOrHead(std::string_view method) { return method == "GET" || method == "HEAD"; }

bool IsValidId(std::string_view id) {
  return !id.empty() && id.size() <= kMaxIdBytes && std::all_of(id.begin(), id.end(), IsIdChar);
}

std::string_view Trim(std::string_view s) {
  while (!s.empty() && (s.front() == ' ' || s.front() == '\t')) s.remove_prefix(1);
  while (!s.empty() && (s.back() == ' ' || s.back() == '\t' || s.back() == '\r'))
    s.remove_suffix(1);
  return s;
}

std::string Printable(std::string_view text) {
  std::string out(text);
  for (char& c : out) {
    const auto u = static_cast<unsigned char>(c);
    if (u < 0x20 || u == 0x7f) c = '?';
  }
  return out;
}

std::string Quote(std::string_view s) { return "\"" + std::string(s) + "\""; }

std::optional<int64_t> ParsePositive(std::string_view text) {
  int64_t v = 0;
  auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), v);
  if (ec != std::errc() || end != text.data() + text.size() || v <= 0) return std::nullopt;
  return v;
}

common::Result<boost::json::value> ParseJson(std::string_view text) {
  boost::json::stream_parser parser;
  boost::system::error_code ec;
  const size_t consumed = parser.write(text.data(), text.size(), ec);
  if (!ec) parser.finish(ec);
  if (ec) {
    return common::InvalidArgument("invalid JSON: " + ec.message() + " at offset " +
                                   std::to_string(consumed));
  }
  return parser.release();
}

void WriteJson(Response& out, int status, const boost::json::value& body) {
  out.status = status;
  out.content_type = kJson;
  out.body = boost::json::serialize(body);
  out.body.push_back('\n');
}

std::string MediaType(const Request& request) {
  auto header = request.Header("Content-Type");
  if (!header) return {};
  std::string type(Trim(header->substr(0, header->find(';'))));
  for (char& c : type) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return type;
}

Status MethodNotAllowed(const Request& request, std::string_view allow, Response& out) {
  out.AddHeader("Allow", std::string(allow));
  return Status(Code::kMethodNotAllowed, std::string(request.method) + " is not allowed on " +
                                             std::string(request.path) +
                                             " (allowed: " + std::string(allow) + ")");
}

Status NoQuery(const Request& request) {
  if (request.query.empty()) return Status::Ok();
  return common::InvalidArgument(std::string(request.path) + " takes no query parameters");
}

}  // namespace openimds::admin
