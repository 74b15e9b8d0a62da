#include "flavour/ec2/ec2_flavour.h"

#include <algorithm>
#include <atomic>
#include <charconv>
#include <chrono>
#include <string>
#include <unordered_map>

#include "common/log.h"
#include "flavour/ec2/ec2_errors.h"
#include "flavour/ec2/ec2_path.h"
#include "flavour/ec2/ec2_versions.h"

namespace openimds::flavour::ec2 {
namespace {

using common::Code;
using common::Request;
using common::Response;
using common::Status;

constexpr std::string_view kComponent = "ec2";
constexpr std::string_view kTextPlain = "text/plain";
constexpr std::string_view kOctetStreamType = "application/octet-stream";

bool IsMethod(const Request& request, std::string_view method) { return request.method == method; }

// Refusals are counted always and logged through the rate-limited refusal
// log: every one of them can be triggered by a guest at line rate. The token
// itself is never logged.
void LogRefusal(std::string_view reason, const model::Instance& instance, const Request& request) {
  if (common::GetLogLevel() > common::LogLevel::kWarn) return;
  std::string line(reason);
  line += ": instance=";
  line += instance.id;
  line += " method=";
  line += request.method;
  line += " path=";
  line += request.path.substr(0, 256);
  common::LogRefusal(kComponent, line);
}

bool IsHostChar(char c) {
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '.' ||
         c == '-' || c == '_' || c == ':' || c == '[' || c == ']';
}

// The Host header when it can only be a host (and port): it is echoed into a
// response header, so anything else falls back to the configured host.
std::string_view LocationHost(const Request& request, std::string_view fallback) {
  const auto host = request.Header("Host");
  if (!host.has_value() || host->empty() || host->size() > 255) return fallback;
  for (char c : *host) {
    if (!IsHostChar(c)) return fallback;
  }
  return *host;
}

// The TTL header's value: ASCII digits only (no sign, no spaces), capped in
// length before conversion so no input can overflow. Returns the problem, or
// an empty view when `ttl` was set.
std::string_view ParseTtl(std::string_view text, int& ttl) {
  static constexpr std::string_view kNotNumber =
      "X-aws-ec2-metadata-token-ttl-seconds must be a whole number of seconds";
  static constexpr std::string_view kRange =
      "X-aws-ec2-metadata-token-ttl-seconds must be between 1 and 21600";
  if (text.empty()) return kNotNumber;
  for (char c : text) {
    if (c < '0' || c > '9') return kNotNumber;
  }
  // Ten digits cannot overflow int64 and cover every leading-zero spelling
  // of a valid TTL; anything longer is out of range whatever it says.
  if (text.size() > 10) return kRange;
  int64_t value = 0;
  for (char c : text) value = value * 10 + (c - '0');
  if (value < Ec2Flavour::kMinTtlSeconds || value > Ec2Flavour::kMaxTtlSeconds) return kRange;
  ttl = static_cast<int>(value);
  return {};
}

constexpr std::string_view kRequestsHelp =
    "EC2 metadata GET/HEAD requests that passed the token policy, by protocol "
    "(v1 = without a session token)";
constexpr std::string_view kRejectedHelp =
    "EC2 metadata requests refused (401) or downgraded for their session token, by reason";
constexpr std::string_view kPutRejectedHelp = "EC2 token requests refused, by reason";
constexpr std::string_view kV1Help =
    "EC2 metadata requests served without a session token (IMDSv1), by instance: EC2's "
    "MetadataNoToken. instance=\"_other\" once max_v1_instance_series is reached";
constexpr std::string_view kCredentialReadsHelp =
    "Reads of role or identity credentials, by delivery (v1: without a token, v2: with one) "
    "and result (unavailable: no fresh credentials, answered 404)";

std::atomic<uint64_t> g_next_generation{1};

// Per-thread table: instance id -> its v1 counter.
struct StringHash {
  using is_transparent = void;
  size_t operator()(std::string_view s) const { return std::hash<std::string_view>()(s); }
};
struct V1Table {
  uint64_t owner = 0;  // Ec2Flavour::generation_ of the flavour the entries belong to
  std::unordered_map<std::string, common::Counter*, StringHash, std::equal_to<>> counters;
  // The last instance looked up: a guest crawling its tree asks many times
  // in a row, and an id compare is cheaper than hashing it (callgrind: the
  // hash was 2% of the hot path).
  std::string last_id;
  common::Counter* last = nullptr;
};

}  // namespace

Ec2Flavour::Ec2Flavour(Options options, const auth::TokenAuthority& tokens,
                       const common::Clock& clock, common::MetricsRegistry& metrics,
                       const auth::DocumentSigner* signer, const CredentialProvider* credentials)
    : options_(std::move(options)),
      tokens_(tokens),
      clock_(clock),
      tree_(Ec2Categories(), TreeOptionsFor(options_.dialect)),
      signer_(signer),
      credentials_(credentials),
      metrics_(metrics),
      generation_(g_next_generation.fetch_add(1)),
      requests_v1_(metrics.GetCounter("imds_requests_total", kRequestsHelp, "version=\"v1\"")),
      requests_v2_(metrics.GetCounter("imds_requests_total", kRequestsHelp, "version=\"v2\"")),
      tokens_issued_(metrics.GetCounter("imds_token_issued_total", "IMDSv2 session tokens issued")),
      put_rejected_ttl_(
          metrics.GetCounter("imds_token_put_rejected_total", kPutRejectedHelp, "reason=\"ttl\"")),
      put_rejected_forwarded_(metrics.GetCounter("imds_token_put_rejected_total", kPutRejectedHelp,
                                                 "reason=\"forwarded\"")),
      put_rejected_versioned_path_(metrics.GetCounter(
          "imds_token_put_rejected_total", kPutRejectedHelp, "reason=\"versioned_path\"")),
      put_rejected_method_(metrics.GetCounter("imds_token_put_rejected_total", kPutRejectedHelp,
                                              "reason=\"method\"")),
      endpoint_disabled_(metrics.GetCounter(
          "imds_endpoint_disabled_total",
          "EC2 metadata requests refused because the instance's endpoint is disabled")),
      not_found_(metrics.GetCounter("imds_not_found_total", "EC2 metadata paths answered 404")),
      method_not_allowed_(metrics.GetCounter("imds_method_not_allowed_total",
                                             "EC2 metadata requests answered 405")) {
  constexpr auth::TokenError kErrors[] = {auth::TokenError::kMalformed,
                                          auth::TokenError::kUnknownKey, auth::TokenError::kBadSeal,
                                          auth::TokenError::kExpired};
  for (auth::TokenError e : kErrors) {
    std::string labels = "reason=\"";
    labels += auth::TokenErrorName(e);
    labels += '"';
    tokens_rejected_[static_cast<size_t>(e)] =
        &metrics.GetCounter("imds_token_rejected_total", kRejectedHelp, labels);
  }
  tokens_rejected_[kTokenMissing] =
      &metrics.GetCounter("imds_token_rejected_total", kRejectedHelp, "reason=\"missing\"");
  for (int v2 = 0; v2 < 2; ++v2) {
    for (int served = 0; served < 2; ++served) {
      std::string labels = v2 ? "delivery=\"v2\"" : "delivery=\"v1\"";
      labels += served ? ",result=\"served\"" : ",result=\"unavailable\"";
      credential_reads_[v2][served] =
          &metrics.GetCounter("imds_credential_reads_total", kCredentialReadsHelp, labels);
    }
  }
}

void Ec2Flavour::CountV1(const model::Instance& instance) const {
  requests_v1_.Inc();
  thread_local V1Table table;
  if (table.owner != generation_) {
    table.counters.clear();
    table.last = nullptr;
    table.owner = generation_;
  }
  if (table.last != nullptr && table.last_id == instance.id) {
    table.last->Inc();
    return;
  }
  auto it = table.counters.find(std::string_view(instance.id));
  if (it == table.counters.end()) {
    // First v1 request of this instance on this thread: register (or find)
    // its series. Instance ids are [A-Za-z0-9._:-], safe inside a label.
    std::string series = instance.id;
    {
      std::lock_guard lock(v1_series_mu_);
      if (v1_series_.count(series) == 0) {
        if (v1_series_.size() >= options_.max_v1_instance_series) {
          series = "_other";
        } else {
          v1_series_.insert(series);
        }
      }
    }
    common::Counter& counter =
        metrics_.GetCounter("imds_v1_requests_total", kV1Help, "instance=\"" + series + "\"");
    it = table.counters.emplace(instance.id, &counter).first;
  }
  table.last_id.assign(instance.id);
  table.last = it->second;
  it->second->Inc();
}

bool Ec2Flavour::Owns(const Request& request) const {
  std::string_view path = request.path;
  if (path == "/") return true;
  if (path.size() < 2 || path.front() != '/') return false;
  path.remove_prefix(1);
  return VersionIndex(path.substr(0, path.find('/')), options_.dialect) >= 0;
}

Status Ec2Flavour::Refuse(Code code, int http_status, std::string_view log_reason,
                          const model::Instance& instance, const Request& request,
                          Response& out) const {
  LogRefusal(log_reason, instance, request);
  out.status = http_status;
  out.content_type = kHtmlContentType;
  AppendErrorPage(http_status, out.body);
  return Status(code, std::string(log_reason));
}

Status Ec2Flavour::Render(const model::Instance& instance, const Request& request,
                          Response& out) const {
  out.AddHeader("Server", "EC2ws");
  out.head = IsMethod(request, "HEAD");
  out.content_type = kTextPlain;

  // "IMDS turned off" refuses everything, the token PUT included (ec2.md §2.3).
  if (!instance.options.http_endpoint_enabled) {
    endpoint_disabled_.Inc();
    return Refuse(Code::kPermissionDenied, 403, "endpoint disabled", instance, request, out);
  }

  Ec2Path path;
  int version = LatestVersion(options_.dialect);
  if (!ParseEc2Path(request.path, options_.max_path_bytes, path) ||
      (path.size > 0 && (version = VersionIndex(path[0], options_.dialect)) < 0)) {
    not_found_.Inc();
    return Refuse(Code::kNotFound, 404, "bad path", instance, request, out);
  }

  const bool token_path = path.size == 3 && path[1] == "api" && path[2] == "token";
  if (token_path && path[0] == "latest") return IssueToken(instance, request, out);
  if (token_path && IsMethod(request, "PUT")) {
    // Tokens are issued only at /latest/api/token; AWS documents 403 here.
    put_rejected_versioned_path_.Inc();
    return Refuse(Code::kPermissionDenied, 403, "token PUT on a dated version", instance, request,
                  out);
  }
  if (!IsMethod(request, "GET") && !IsMethod(request, "HEAD")) {
    method_not_allowed_.Inc();
    out.AddHeader("Allow", "GET, HEAD");
    return Refuse(Code::kMethodNotAllowed, 405, "method not allowed", instance, request, out);
  }
  bool v2 = false;
  if (Status auth = CheckToken(instance, request, out, v2); !auth.ok()) return auth;

  if (path.size == 0) {  // "/": the version list
    for (std::string_view v : DatedVersions(options_.dialect)) {
      out.body += v;
      out.body += '\n';
    }
    out.body += "latest";
    return Status::Ok();
  }

  RenderContext ctx;
  ctx.instance = &instance;
  ctx.clock = &clock_;
  ctx.version = version;
  ctx.signer = signer_;
  ctx.credentials = credentials_;
  const Ec2Tree::Node* node = tree_.Find(path.segments().subspan(1), ctx);
  if (node != nullptr && !node->is_directory()) {
    // A leaf asked with a trailing slash is still the leaf (botocore asks
    // for "placement/availability-zone/").
    const bool served = tree_.AppendLeaf(*node, ctx, out.body);
    if ((node->flags & kCredentialRead) != 0) {
      credential_reads_[v2 ? 1 : 0][served ? 1 : 0]->Inc();
      if (!served) {
        // Role listed, but nothing fresh to hand out: the credentials were
        // never pushed, expired, or the credential source has not (yet)
        // produced any. Never the credentials themselves in the log.
        not_found_.Inc();
        return Refuse(Code::kNotFound, 404, "no fresh credentials", instance, request, out);
      }
    }
    if (served) {
      if ((node->flags & kOctetStream) != 0) out.content_type = kOctetStreamType;
      return Status::Ok();
    }
  } else if (node != nullptr) {
    const size_t mark = out.body.size();
    if (tree_.AppendListing(*node, ctx, out.body)) {
      // "/latest" answers like "/latest/"; every other directory redirects
      // to its '/' form. Clients that ask without the slash
      // (cloud-init: dynamic/instance-identity) follow the redirect.
      const bool bare_latest = path.size == 1 && path[0] == "latest";
      if (path.trailing_slash || bare_latest || !options_.redirect_directories ||
          options_.dialect == Ec2Dialect::kNova) {
        return Status::Ok();
      }
      out.body.resize(mark);
      return Redirect(path.segments(), request, out);
    }
  }
  not_found_.Inc();
  return Refuse(Code::kNotFound, 404, "not found", instance, request, out);
}

Status Ec2Flavour::CheckToken(const model::Instance& instance, const Request& request,
                              Response& out, bool& v2) const {
  v2 = false;
  std::string_view token;
  int count = 0;
  for (const auto& h : request.headers) {
    if (common::EqualsIgnoreCase(h.name, kTokenHeader) && count++ == 0) token = h.value;
  }
  const bool required =
      instance.options.http_tokens == model::MetadataOptions::HttpTokens::kRequired;
  if (count == 0) {
    if (required) {
      tokens_rejected_[kTokenMissing]->Inc();
      return Refuse(Code::kUnauthenticated, 401, "token missing", instance, request, out);
    }
    CountV1(instance);
    return Status::Ok();
  }
  auth::TokenError why = auth::TokenError::kMalformed;
  // Two token headers are refused rather than choosing one of them.
  const Status verified =
      count == 1 ? tokens_.Verify(token, instance.id, instance.managed.incarnation, &why)
                 : Status(Code::kUnauthenticated, "repeated");
  if (verified.ok()) {
    requests_v2_.Inc();
    v2 = true;
    return Status::Ok();
  }
  tokens_rejected_[static_cast<size_t>(why)]->Inc();
  if (required || options_.reject_invalid_token_when_optional) {
    return Refuse(Code::kUnauthenticated, 401, auth::TokenErrorName(why), instance, request, out);
  }
  CountV1(instance);
  return Status::Ok();
}

Status Ec2Flavour::IssueToken(const model::Instance& instance, const Request& request,
                              Response& out) const {
  if (!IsMethod(request, "PUT")) {
    // The SDKs read 405 here as "no IMDSv2, fall back to v1" (ec2.md §2.6).
    put_rejected_method_.Inc();
    out.AddHeader("Allow", "OPTIONS, PUT");
    return Refuse(Code::kMethodNotAllowed, 405, "token path needs PUT", instance, request, out);
  }
  if (request.HeaderCount("X-Forwarded-For") > 0) {
    // A PUT relayed by a reverse proxy is how SSRF reaches IMDS (ec2.md §6).
    put_rejected_forwarded_.Inc();
    return Refuse(Code::kPermissionDenied, 403, "token PUT with X-Forwarded-For", instance, request,
                  out);
  }
  std::string_view problem;
  int ttl = 0;
  const int ttl_headers = request.HeaderCount(kTtlHeader);
  if (ttl_headers == 0) {
    problem = "missing X-aws-ec2-metadata-token-ttl-seconds header";
  } else if (ttl_headers > 1) {
    problem = "X-aws-ec2-metadata-token-ttl-seconds given more than once";
  } else {
    problem = ParseTtl(*request.Header(kTtlHeader), ttl);
  }
  if (!problem.empty()) {
    put_rejected_ttl_.Inc();
    LogRefusal(problem, instance, request);
    out.status = 400;
    out.content_type = kTextPlain;
    out.body += problem;
    out.body += '\n';
    return Status(Code::kInvalidArgument, std::string(problem));
  }
  // Bound to this incarnation: once the instance is deleted (and perhaps
  // created again under its id) the token is refused.
  auto token =
      tokens_.Issue(instance.id, instance.managed.incarnation, std::chrono::seconds(ttl));
  if (!token.ok()) {
    common::LogError(kComponent, "token issue failed: " + token.status().ToString());
    out.status = 500;
    out.content_type = kHtmlContentType;
    AppendErrorPage(500, out.body);
    return token.status();
  }
  out.status = 200;
  out.content_type = kTextPlain;
  out.body += *token;  // no trailing newline: clients put it verbatim in a header
  char digits[16];
  const auto [end, ec] = std::to_chars(digits, digits + sizeof(digits), ttl);
  out.AddHeader("X-Aws-Ec2-Metadata-Token-Ttl-Seconds", std::string(digits, end));
  // The token must not travel past the hop limit (ec2.md §2.4); 1..64 is the
  // model's range, clamped here so a bad record cannot produce TTL 0.
  out.ip_ttl = std::clamp(int{instance.options.hop_limit}, 1, 64);
  tokens_issued_.Inc();
  return Status::Ok();
}

Status Ec2Flavour::Redirect(std::span<const std::string_view> segments, const Request& request,
                            Response& out) const {
  std::string location = "http://";
  location += LocationHost(request, options_.location_host);
  for (std::string_view segment : segments) {
    location += '/';
    location += segment;
  }
  location += '/';
  out.status = 301;
  out.AddHeader("Location", std::move(location));
  return Status::Ok();
}

void Ec2Flavour::RenderError(const Status& error, const Request& request, Response& out) const {
  out.AddHeader("Server", "EC2ws");
  out.head = IsMethod(request, "HEAD");
  // An OK status here is a caller's bug; answer 500 rather than an empty 200.
  out.status = error.ok() ? 500 : common::HttpStatusFor(error.code());
  if (error.message().empty()) {
    out.content_type = kHtmlContentType;
    AppendErrorPage(out.status, out.body);
  } else {
    out.content_type = kTextPlain;
    out.body += error.message();
    out.body += '\n';
  }
}

}  // namespace openimds::flavour::ec2
