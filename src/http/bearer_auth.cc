#include "http/bearer_auth.h"

#include "common/log.h"
#include "common/secret_file.h"

namespace openimds::http {

common::Result<std::string> ReadBearerTokenFile(const std::string& path) {
  auto token = common::ReadSecretFile(path);
  if (!token.ok()) return token.status();
  for (char c : *token) {
    if (c < 0x21 || c > 0x7e) {
      return common::InvalidArgument("secret file " + path +
                                     ": a bearer token must be one word of printable ASCII");
    }
  }
  return token;
}
namespace {

bool ConstantTimeEquals(std::string_view a, std::string_view b) {
  unsigned char diff = a.size() == b.size() ? 0 : 1;
  const size_t n = a.size() < b.size() ? a.size() : b.size();
  for (size_t i = 0; i < n; ++i) diff |= static_cast<unsigned char>(a[i] ^ b[i]);
  return diff == 0;
}

}  // namespace

BearerAuthHandler::BearerAuthHandler(Handler& inner, std::string token,
                                     common::MetricsRegistry& metrics)
    : inner_(inner),
      token_(std::move(token)),
      rejected_(metrics.GetCounter("admin_auth_rejected_total",
                                   "Admin requests refused for a missing or wrong bearer token.")) {}

void BearerAuthHandler::Handle(const common::Request& request, common::Response& out) {
  if (Check(request, out)) inner_.Handle(request, out);
}

bool BearerAuthHandler::Admit(const common::Request& head, common::Response& out) {
  return Check(head, out) && inner_.Admit(head, out);
}

bool BearerAuthHandler::Check(const common::Request& request, common::Response& out) {
  auto auth = request.Header("Authorization");
  constexpr std::string_view kPrefix = "Bearer ";
  const bool ok = auth && auth->size() > kPrefix.size() &&
                  common::EqualsIgnoreCase(auth->substr(0, kPrefix.size()), kPrefix) &&
                  ConstantTimeEquals(auth->substr(kPrefix.size()), token_);
  if (!ok) {
    rejected_.Inc();
    common::LogRefusal("admin", std::string(auth ? "wrong" : "missing") + " bearer token from " +
                                 request.peer.ToString());
    out.status = 401;
    out.content_type = "application/json";
    out.body = R"({"error":{"code":"unauthenticated","message":"missing or wrong bearer token"}})";
    out.body += '\n';
    out.AddHeader("WWW-Authenticate", "Bearer realm=\"openimds-admin\"");
    return false;
  }
  return true;
}

}  // namespace openimds::http
