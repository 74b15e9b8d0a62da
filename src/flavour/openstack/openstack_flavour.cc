#include "flavour/openstack/openstack_flavour.h"

#include <sys/random.h>

#include <algorithm>
#include <boost/json.hpp>
#include <cerrno>
#include <charconv>
#include <random>
#include <vector>

#include "common/encoding.h"
#include "common/log.h"
#include "flavour/openstack/openstack_documents.h"
#include "flavour/openstack/openstack_versions.h"
#include "flavour/openstack/python_json.h"

namespace openimds::flavour::openstack {
namespace {

namespace json = boost::json;

// Content types as webob writes them for Nova (text/* gains a charset).
constexpr std::string_view kText = "text/plain; charset=UTF-8";
constexpr std::string_view kJson = "application/json";
constexpr std::string_view kHtml = "text/html; charset=UTF-8";  // webob's default (password)

// Nova's random_seed: 512 bytes from os.urandom, base64.
constexpr size_t kRandomSeedBytes = 512;

void GetRandom(unsigned char* buf, size_t n) {
  size_t done = 0;
  while (done < n) {
    const ssize_t got = getrandom(buf + done, n - done, 0);
    if (got > 0) {
      done += static_cast<size_t>(got);
    } else if (got < 0 && errno != EINTR) {
      // No getrandom (ENOSYS in old sandboxes): the C++ library's source.
      std::random_device rd;
      for (; done < n; ++done) buf[done] = static_cast<unsigned char>(rd());
    }
  }
}

// webob's plain-text error body ("<status>\n\n<explanation>\n\n   ").
void WebobError(int status, std::string_view title, std::string_view explanation,
                common::Response& out) {
  out.status = status;
  out.content_type = kText;
  out.body.clear();
  out.body.append(std::to_string(status)).append(" ").append(title).append("\n\n");
  out.body.append(explanation).append("\n\n   ");
}

std::vector<std::string_view> Split(std::string_view path) {
  std::vector<std::string_view> tokens;
  size_t start = 1;  // after the leading '/'
  while (start <= path.size()) {
    size_t end = path.find('/', start);
    if (end == std::string_view::npos) end = path.size();
    tokens.push_back(path.substr(start, end - start));
    start = end + 1;
  }
  return tokens;
}

// Shallow merge of two compact JSON objects (`over` wins), as text.
std::string MergeObjects(std::string_view base, const std::optional<model::Str>& over) {
  if (!over) return std::string(base);
  boost::system::error_code ec;
  json::value b = json::parse(base, ec);
  if (ec || !b.is_object()) b = json::object{};
  json::value o = json::parse(*over, ec);
  if (!ec && o.is_object()) {
    for (const auto& m : o.get_object()) b.get_object()[m.key()] = m.value();
  }
  std::string out;
  AppendPythonJson(b, out);
  return out;
}

}  // namespace

common::Result<std::unique_ptr<OpenStackFlavour>> OpenStackFlavour::Create(
    Options options, const common::Clock& clock, const PasswordStore* passwords,
    common::MetricsRegistry& metrics) {
  boost::system::error_code ec;
  json::value v = json::parse(options.static_vendor_data, ec);
  if (ec || !v.is_object()) {
    return common::InvalidArgument("openstack static vendor data is not a JSON object");
  }
  std::string compact;
  AppendPythonJson(v, compact);
  if (!options.random_bytes) options.random_bytes = GetRandom;
  return std::unique_ptr<OpenStackFlavour>(
      new OpenStackFlavour(std::move(options), std::move(compact), clock, passwords, metrics));
}

namespace {
// openstack_refused_total{reason=...}: one series per refusal reason.
common::Counter& RefusedCounter(common::MetricsRegistry& metrics, std::string_view reason) {
  return metrics.GetCounter("openstack_refused_total",
                            "OpenStack flavour requests refused, by reason.",
                            "reason=\"" + std::string(reason) + "\"");
}
}  // namespace

OpenStackFlavour::OpenStackFlavour(Options options, std::string static_vendor_data_compact,
                                   const common::Clock& clock, const PasswordStore* passwords,
                                   common::MetricsRegistry& metrics)
    : options_(std::move(options)),
      static_vendor_data_(std::move(static_vendor_data_compact)),
      clock_(clock),
      passwords_(passwords),
      requests_(metrics.GetCounter("openstack_requests_total",
                                   "Requests rendered by the OpenStack flavour.")),
      not_found_(RefusedCounter(metrics, "not_found")),
      pinned_(RefusedCounter(metrics, "flavour_not_allowed")),
      password_bad_method_(RefusedCounter(metrics, "password_method")),
      password_too_large_(RefusedCounter(metrics, "password_too_large")),
      password_conflict_(RefusedCounter(metrics, "password_already_set")),
      password_unavailable_(RefusedCounter(metrics, "password_store_unavailable")),
      passwords_set_(metrics.GetCounter("openstack_passwords_set_total",
                                        "Passwords stored through POST .../password.")) {}

std::string OpenStackFlavour::NormalizePath(std::string_view path) {
  // posixpath.normpath: one leading slash, or exactly two (POSIX leaves "//"
  // implementation-defined and Python keeps it); three or more become one.
  size_t lead = 0;
  while (lead < path.size() && path[lead] == '/') ++lead;
  const std::string_view prefix = lead == 2 ? "//" : (lead > 0 ? "/" : "");
  std::vector<std::string_view> parts;
  size_t i = lead;
  while (i < path.size()) {
    size_t end = path.find('/', i);
    if (end == std::string_view::npos) end = path.size();
    std::string_view part = path.substr(i, end - i);
    if (part.empty() || part == ".") {
      // skip
    } else if (part == "..") {
      if (!parts.empty() && parts.back() != "..") {
        parts.pop_back();
      } else if (prefix.empty()) {
        parts.push_back(part);
      }
    } else {
      parts.push_back(part);
    }
    i = end + 1;
  }
  std::string out(prefix);
  for (size_t k = 0; k < parts.size(); ++k) {
    if (k > 0) out.push_back('/');
    out.append(parts[k]);
  }
  if (out.empty()) out = "/";  // Nova's lookup prefixes "/" before normpath
  return out;
}

bool OpenStackFlavour::Owns(const common::Request& request) const {
  const std::string_view p = request.path;
  // Fast reject without allocating: the normalised path starts with
  // "/openstack", so the raw one contains "openstack".
  if (p.find("openstack") == std::string_view::npos) return false;
  const std::string n = NormalizePath(p);
  return n == "/openstack" || n.rfind("/openstack/", 0) == 0;
}

common::Status OpenStackFlavour::NotFound(std::string_view reason,
                                          const model::Instance& instance,
                                          const common::Request& request,
                                          common::Response& out) const {
  not_found_.Inc();
  common::LogRefusal("openstack", std::string(reason) + ": " + std::string(request.path) +
                                      " for " + instance.id);
  WebobError(404, "Not Found", "The resource could not be found.", out);
  return common::NotFound(std::string(reason));
}

common::Status OpenStackFlavour::Render(const model::Instance& instance,
                                        const common::Request& request,
                                        common::Response& out) const {
  requests_.Inc();
  if (!instance.flavours.empty() &&
      std::find(instance.flavours.begin(), instance.flavours.end(), Name()) ==
          instance.flavours.end()) {
    pinned_.Inc();
    common::LogRefusal("openstack", "instance " + instance.id +
                                        " is not served by the openstack flavour (flavours pin)");
    WebobError(404, "Not Found", "The resource could not be found.", out);
    return common::NotFound("flavour not allowed for this instance");
  }

  const std::string path = NormalizePath(request.path);
  const std::vector<std::string_view> tokens = Split(path);
  if (tokens.empty() || tokens[0] != "openstack") {
    return NotFound("not an /openstack path", instance, request, out);
  }
  out.status = 200;
  out.content_type = kText;
  if (tokens.size() == 1) {
    out.body.append(VersionListing(clock_));
    return common::Status::Ok();
  }
  if (tokens[1] == "content") {
    // Nova: no listing, and content files exist only on config drives.
    return NotFound("no such content file", instance, request, out);
  }
  const int version = VersionIndex(tokens[1]);
  if (version < 0) return NotFound("unknown OpenStack metadata version", instance, request, out);
  if (tokens.size() == 2) {
    out.body.append("meta_data.json");
    if (instance.user_data) out.body.append("\nuser_data");
    if (version >= kGrizzly) out.body.append("\npassword");
    if (version >= kHavana) out.body.append("\nvendor_data.json");
    if (version >= kLiberty) out.body.append("\nnetwork_data.json");
    if (version >= kNewtonTwo) out.body.append("\nvendor_data2.json");
    return common::Status::Ok();
  }
  if (tokens.size() != 3) return NotFound("no such OpenStack document", instance, request, out);
  const std::string_view file = tokens[2];

  if (file == "meta_data.json") {
    std::string seed;
    if (version >= kGrizzly) {
      unsigned char bytes[kRandomSeedBytes];
      options_.random_bytes(bytes, sizeof(bytes));
      seed = common::Base64Encode(
          std::string_view(reinterpret_cast<const char*>(bytes), sizeof(bytes)));
    }
    out.content_type = kJson;
    AppendPythonJson(MetaData(instance, version, options_.dhcp_domain, seed), out.body);
    return common::Status::Ok();
  }
  if (file == "user_data") {
    // Nova serves it at every version, listed or not.
    if (!instance.user_data) return NotFound("instance has no user data", instance, request, out);
    out.body.append(*instance.user_data);
    return common::Status::Ok();
  }
  if (file == "network_data.json") {
    // Nova has no version gate here (it is listed from 2015-10-15 only).
    if (options_.network_data_as_json) out.content_type = kJson;
    AppendPythonJson(NetworkData(instance), out.body);
    return common::Status::Ok();
  }
  if (file == "password") {
    if (version < kGrizzly) return NotFound("password before 2013-04-04", instance, request, out);
    return Password(instance, request, out);
  }
  if (file == "vendor_data.json") {
    if (version < kHavana || !options_.static_vendor_data_enabled) {
      return NotFound("vendor_data.json not served", instance, request, out);
    }
    out.content_type = kJson;
    VendorData(instance, out.body);
    return common::Status::Ok();
  }
  if (file == "vendor_data2.json") {
    if (version < kNewtonTwo) return NotFound("vendor_data2.json before 2016-10-06", instance, request, out);
    out.content_type = kJson;
    return VendorData2(instance, request, out);
  }
  return NotFound("no such OpenStack document", instance, request, out);
}

void OpenStackFlavour::VendorData(const model::Instance& instance, std::string& out) const {
  if (!instance.guest->vendor_data) {
    out.append(static_vendor_data_);
    return;
  }
  out.append(MergeObjects(static_vendor_data_, instance.guest->vendor_data));
}

// Nova's _vendor_data2: providers in order into one object; StaticJSON sets
// "static", DynamicJSON adds one member per target and loses any key that
// is already there.
common::Status OpenStackFlavour::VendorData2(const model::Instance& instance,
                                             const common::Request& request,
                                             common::Response& out) const {
  DynamicVendorData::LookupResult dynamic;
  if (options_.dynamic_vendor_data != nullptr) {
    dynamic = options_.dynamic_vendor_data->Lookup(instance, request.resumed);
    if (dynamic.pending) {
      out.deferred = std::move(dynamic.pending);  // the http core calls again
      return common::Status::Ok();
    }
    if (options_.vendordata_failure_fatal) {
      for (const auto& v : dynamic.values) {
        if (v.failure.empty()) continue;
        // Name and reason only: the detail (in the log) names internal
        // addresses a guest has no business seeing.
        const std::string why =
            "dynamic vendordata target " + std::string(v.name) + " failed: " + v.failure;
        WebobError(500, "Internal Server Error", why, out);
        return common::Unavailable(why);
      }
    }
  }
  const bool with_static = options_.static_vendor_data_enabled;
  bool first = true;
  auto key = [&](std::string_view name) {
    if (!first) out.body.append(", ");
    first = false;
    AppendPythonJson(json::value(json::string(name)), out.body);
    out.body.append(": ");
  };
  bool static_done = false;
  out.body.append("{");
  if (with_static && options_.static_before_dynamic) {
    key("static");
    VendorData(instance, out.body);
    static_done = true;
  }
  for (const auto& v : dynamic.values) {
    if (with_static && v.name == "static") {
      if (static_done) continue;  // dropped, as Nova does
      key("static");  // Nova's later j['static'] = ... keeps this position
      VendorData(instance, out.body);
      static_done = true;
      continue;
    }
    key(v.name);
    out.body.append(*v.json);
  }
  if (with_static && !static_done) {
    key("static");
    VendorData(instance, out.body);
  }
  out.body.append("}");
  return common::Status::Ok();
}

common::Status OpenStackFlavour::Password(const model::Instance& instance,
                                          const common::Request& request,
                                          common::Response& out) const {
  if (passwords_ == nullptr) return NotFound("no password store", instance, request, out);
  const bool get = request.method == "GET";
  const bool post = request.method == "POST";
  if (!get && !post) {
    password_bad_method_.Inc();
    common::LogRefusal("openstack", "password: method " + std::string(request.method) +
                                        " refused for " + instance.id);
    WebobError(400, "Bad Request", "GET and POST only are supported.", out);
    return common::InvalidArgument("GET and POST only are supported");
  }
  auto current = passwords_->Get(instance.id);
  if (!current.ok()) {
    password_unavailable_.Inc();
    common::LogRefusal("openstack", "password store: " + current.status().message());
    WebobError(503, "Service Unavailable", "The password store is unavailable.", out);
    return current.status();
  }
  out.status = 200;
  out.content_type = kHtml;
  if (get) {
    if (*current) out.body.append(**current);
    return common::Status::Ok();
  }
  // POST, in Nova's order: conflict first, then size.
  if (*current && !(*current)->empty()) {
    password_conflict_.Inc();
    common::LogRefusal("openstack", "password already set for " + instance.id);
    WebobError(409, "Conflict", "There was a conflict when trying to complete your request.", out);
    return common::Conflict("password already set");
  }
  size_t declared = 0;
  if (auto cl = request.Header("Content-Length")) {
    std::from_chars(cl->data(), cl->data() + cl->size(), declared);
  }
  if (declared > options_.max_password_bytes || request.body.size() > options_.max_password_bytes) {
    password_too_large_.Inc();
    common::LogRefusal("openstack", "password POST of " + std::to_string(request.body.size()) +
                                        " bytes for " + instance.id + " exceeds " +
                                        std::to_string(options_.max_password_bytes));
    WebobError(400, "Bad Request", "Request is too large.", out);
    return common::InvalidArgument("password too large");
  }
  // An empty password is Nova's "unset" (it stores empty chunks, and the
  // next POST is accepted): nothing to store.
  if (request.body.empty()) return common::Status::Ok();
  auto stored = passwords_->SetIfAbsent(instance.id, request.body);
  if (!stored.ok()) {
    password_unavailable_.Inc();
    common::LogRefusal("openstack", "password store: " + stored.status().message());
    WebobError(503, "Service Unavailable", "The password store is unavailable.", out);
    return stored.status();
  }
  if (!*stored) {
    // Lost the race to a concurrent POST: the compare-and-set closes Nova's
    // window where both would succeed.
    password_conflict_.Inc();
    common::LogRefusal("openstack", "password already set for " + instance.id + " (race)");
    WebobError(409, "Conflict", "There was a conflict when trying to complete your request.", out);
    return common::Conflict("password already set");
  }
  passwords_set_.Inc();
  return common::Status::Ok();
}

void OpenStackFlavour::RenderError(const common::Status& error, const common::Request& request,
                                   common::Response& out) const {
  (void)request;
  if (error.code() == common::Code::kNotFound && error.message().empty()) {
    WebobError(404, "Not Found", "The resource could not be found.", out);
    return;
  }
  out.status = common::HttpStatusFor(error.code());
  out.content_type = kText;
  out.body.assign(error.message());
  out.body.push_back('\n');
}

}  // namespace openimds::flavour::openstack
