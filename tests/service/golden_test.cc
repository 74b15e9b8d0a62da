// One golden runner for every flavour. Each tests/testdata/<flavour>/cases.json
// lists requests and what the guest must read back; the runner serves each
// request through service::MetadataService (identity, catalog, flavour
// dispatch, the service's checks, the flavour's rendering: everything but
// sockets) and compares status, the headers a case names, and the body, byte
// for byte, with the case's golden file. A flavour's new golden cases are
// lines in its cases.json and a .golden file; no C++.
//
// cases.json:
//   {"defaults": {...case fields...}, "cases": [{...}, ...]}
// A case (every field but "name", "request" and "expect" may come from
// "defaults"):
//   "name"      unique in the file; [A-Za-z0-9_-]
//   "instance"  the record, a file beside cases.json (the admin API's JSON)
//   "patch"     a JSON merge patch (RFC 7386) applied to the record first
//   "clock"     RFC 3339: the time every flavour reads
//   "options"   per flavour name, the options it is built with (see
//               BuildFlavours below)
//   "request"   {"method": "GET", "path": "/...", "headers": {"Name": "v"}}
//   "expect"    {"status": 200, "headers": {"Content-Type": "...",
//               "Name": "v" | null (absent)}, "body_file": "x.golden" |
//               "body": "inline"}
// OPENIMDS_UPDATE_GOLDEN=1 rewrites the body files (review the diff).
#include <gtest/gtest.h>

#include <algorithm>
#include <boost/json.hpp>
#include <filesystem>
#include <fstream>
#include <map>
#include <memory>
#include <set>
#include <string>
#include <vector>

#include "auth/document_signer.h"
#include "auth/token_authority.h"
#include "catalog/catalog.h"
#include "common/clock.h"
#include "common/http_message.h"
#include "common/metrics.h"
#include "common/time_format.h"
#include "flavour/ec2/ec2_flavour.h"
#include "flavour/ec2/ec2_versions.h"
#include "flavour/flavour.h"
#include "flavour/openstack/openstack_flavour.h"
#include "flavour/openstack/password_store.h"
#include "identity/resolver.h"
#include "model/instance_json.h"
#include "service/metadata_service.h"
#include "support/testdata.h"

namespace openimds::service {
namespace {

namespace json = boost::json;
namespace fs = std::filesystem;

struct GoldenCase {
  std::string flavour;  // the folder under tests/testdata
  std::string name;
  json::object fields;  // defaults, then the case's own fields over them
};

// gtest prints a failing parameter with this.
void PrintTo(const GoldenCase& c, std::ostream* os) { *os << c.flavour << "/" << c.name; }

// Every case of every tests/testdata/<flavour>/cases.json, in file order.
std::vector<GoldenCase> LoadCases() {
  std::vector<GoldenCase> out;
  std::vector<fs::path> dirs;
  for (const auto& entry : fs::directory_iterator(OPENIMDS_TESTDATA_DIR)) {
    if (entry.is_directory() && fs::exists(entry.path() / "cases.json")) {
      dirs.push_back(entry.path());
    }
  }
  std::sort(dirs.begin(), dirs.end());
  for (const fs::path& dir : dirs) {
    const std::string text = testdata::ReadFile((dir / "cases.json").string());
    const json::object file = json::parse(text).as_object();
    const json::object* defaults =
        file.if_contains("defaults") != nullptr ? &file.at("defaults").as_object() : nullptr;
    for (const json::value& c : file.at("cases").as_array()) {
      GoldenCase g;
      g.flavour = dir.filename().string();
      if (defaults != nullptr) g.fields = *defaults;
      for (const auto& [k, v] : c.as_object()) g.fields[k] = v;
      g.name = std::string(g.fields.at("name").as_string());
      out.push_back(std::move(g));
    }
  }
  return out;
}

// RFC 7386.
void MergePatch(json::value& target, const json::value& patch) {
  if (!patch.is_object()) {
    target = patch;
    return;
  }
  if (!target.is_object()) target = json::object();
  json::object& t = target.as_object();
  for (const auto& [k, v] : patch.as_object()) {
    if (v.is_null()) {
      t.erase(k);
    } else {
      MergePatch(t[k], v);
    }
  }
}

std::string Text(const json::object& o, std::string_view key, std::string_view fallback = {}) {
  const json::value* v = o.if_contains(key);
  return v != nullptr ? std::string(v->as_string()) : std::string(fallback);
}

// One signing identity for the whole run (key generation is the slow part).
const auth::SigningIdentity& Identity() {
  static const auth::SigningIdentity id = *auth::GenerateSigningIdentity({});
  return id;
}

// Everything `openimds serve` puts between a guest's request and the
// flavour's rendering, for one case.
class Server {
 public:
  explicit Server(const GoldenCase& c)
      : clock_(*common::ParseRfc3339(Text(c.fields, "clock", "2024-05-01T13:00:00Z"))) {
    tokens_ = std::make_unique<auth::TokenAuthority>(
        std::move(auth::TokenAuthority::Create({auth::TokenKey{1, std::string(32, 'k')}}, clock_))
            .value());
    const json::value* options = c.fields.if_contains("options");
    BuildFlavours(options != nullptr ? options->as_object() : json::object());
    service_ =
        std::make_unique<MetadataService>(resolver_, Catalog(), flavours_, tokens_.get(), metrics_);
  }

  // Publishes the record as the only one; empty string when it loads, else
  // why not.
  std::string Publish(const std::string& record_text) {
    auto in = model::FromJsonText(record_text);
    if (!in.ok()) return in.status().ToString();
    instance_ = std::make_shared<const model::Instance>(std::move(*in));
    std::vector<catalog::Entry> entries;
    entries.push_back(catalog::Entry{instance_, 1});
    Catalog().ReplaceAll(std::move(entries));
    return {};
  }

  // Serves `request` as the published instance's first address calls it,
  // on a listener for its network.
  common::Response Serve(common::Request request) {
    const auto addresses = model::CallerAddresses(*instance_);
    if (!addresses.empty()) request.peer = *common::IpAddress::Parse(addresses.front());
    request.listener_network = instance_->network;
    // The address a guest listener answers on (a value only: no socket).
    request.local = *common::IpAddress::Parse("169.254.169.254");
    request.local_port = 80;
    common::Response out;
    service_->Handle(request, out);
    return out;
  }

 private:
  // The flavours in `openimds serve`'s precedence order (app/flavours.cc),
  // each built as its module builds it, with the options a case names, and
  // what a golden needs to be reproducible (fixed randomness):
  //   "openstack": {}
  //   "ec2": {"dialect": "aws" | "nova", "identity_signer": false | true,
  //           "redirect_directories": true | false}
  void BuildFlavours(const json::object& options) {
    auto of = [&](std::string_view name) {
      const json::value* v = options.if_contains(name);
      return v != nullptr ? v->as_object() : json::object();
    };

    flavour::openstack::OpenStackFlavour::Options os;
    os.random_bytes = [](unsigned char* buf, size_t n) {
      for (size_t i = 0; i < n; ++i) buf[i] = static_cast<unsigned char>(i);
    };
    auto openstack =
        flavour::openstack::OpenStackFlavour::Create(std::move(os), clock_, &passwords_, metrics_);
    EXPECT_TRUE(openstack.ok()) << openstack.status().ToString();
    if (openstack.ok()) flavours_.Add(std::move(*openstack));

    const json::object ec2 = of("ec2");
    flavour::ec2::Ec2Flavour::Options eo;
    const std::string dialect = Text(ec2, "dialect", "aws");
    EXPECT_TRUE(flavour::ec2::ParseEc2Dialect(dialect, eo.dialect)) << dialect;
    if (const json::value* v = ec2.if_contains("redirect_directories")) {
      eo.redirect_directories = v->as_bool();
    }
    if (const json::value* v = ec2.if_contains("identity_signer"); v != nullptr && v->as_bool()) {
      auth::DocumentSigner::Options so;
      so.key_pem = Identity().key_pem;
      so.certificate_pem = Identity().certificate_pem;
      signer_ = std::move(auth::DocumentSigner::Create(so)).value();
    }
    flavours_.Add(std::make_unique<flavour::ec2::Ec2Flavour>(std::move(eo), *tokens_, clock_,
                                                             metrics_, signer_.get()));
  }

  common::FakeClock clock_;
  common::MetricsRegistry metrics_;
  std::unique_ptr<auth::TokenAuthority> tokens_;
  std::unique_ptr<auth::DocumentSigner> signer_;
  flavour::openstack::MemoryPasswordStore passwords_;
  flavour::Registry flavours_;
  // One catalog for the whole run, each case publishing its record anew:
  // the service keeps one catalog reader per thread, keyed by the catalog's
  // address, so a catalog made where the last one was would be read through
  // the last one's reader.
  static catalog::Catalog& Catalog() {
    static catalog::Catalog* const catalog = new catalog::Catalog();
    return *catalog;
  }

  identity::Resolver resolver_;  // direct mode: the caller is the TCP peer
  std::shared_ptr<const model::Instance> instance_;
  std::unique_ptr<MetadataService> service_;
};

std::optional<std::string> HeaderOf(const common::Response& r, std::string_view name) {
  if (common::EqualsIgnoreCase(name, "Content-Type")) return std::string(r.content_type);
  for (const auto& [n, v] : r.headers) {
    if (common::EqualsIgnoreCase(n, name)) return v;
  }
  return std::nullopt;
}

class GoldenTest : public ::testing::TestWithParam<GoldenCase> {};

TEST_P(GoldenTest, ServesWhatTheGoldenSays) {
  const GoldenCase& c = GetParam();
  const std::string dir = c.flavour + "/";
  const json::object& f = c.fields;

  ASSERT_TRUE(f.contains("instance")) << "a case needs a record";
  json::value record = json::parse(testdata::ReadFile(testdata::Path(dir + Text(f, "instance"))));
  if (const json::value* patch = f.if_contains("patch")) MergePatch(record, *patch);

  Server server(c);
  const std::string loaded = server.Publish(json::serialize(record));
  ASSERT_EQ(loaded, "") << "the case's record does not load";

  const json::object& req = f.at("request").as_object();
  // The request holds views: these strings outlive the call.
  const std::string method = Text(req, "method", "GET");
  const std::string target = Text(req, "path");
  std::vector<std::pair<std::string, std::string>> headers;
  if (const json::value* h = req.if_contains("headers")) {
    for (const auto& [k, v] : h->as_object()) headers.emplace_back(k, v.as_string());
  }
  common::Request request;
  request.method = method;
  request.target = target;
  request.path = std::string_view(target).substr(0, target.find('?'));
  if (target.find('?') != std::string::npos) {
    request.query = std::string_view(target).substr(target.find('?') + 1);
  }
  for (const auto& [n, v] : headers) request.headers.push_back({n, v});

  const common::Response r = server.Serve(request);
  ASSERT_EQ(r.deferred, nullptr) << "a golden case answers at once";

  const json::object& want = f.at("expect").as_object();
  if (const json::value* status = want.if_contains("status")) {
    EXPECT_EQ(r.status, status->to_number<int>());
  }
  if (const json::value* h = want.if_contains("headers")) {
    for (const auto& [name, value] : h->as_object()) {
      const std::optional<std::string> got = HeaderOf(r, name);
      if (value.is_null()) {
        EXPECT_EQ(got, std::nullopt) << name;
      } else {
        EXPECT_EQ(got, std::optional<std::string>(std::string(value.as_string()))) << name;
      }
    }
  }
  if (const json::value* body = want.if_contains("body")) {
    EXPECT_EQ(r.body, body->as_string());
  }
  if (want.contains("body_file")) {
    std::string file = dir + Text(want, "body_file");
    constexpr std::string_view kSuffix = ".golden";
    ASSERT_TRUE(file.ends_with(kSuffix)) << "body files are <name>.golden";
    file.resize(file.size() - kSuffix.size());
    testdata::ExpectGolden(file, r.body);
  }
}

std::string CaseName(const ::testing::TestParamInfo<GoldenCase>& info) {
  std::string name = info.param.flavour + "_" + info.param.name;
  for (char& ch : name) {
    if (!std::isalnum(static_cast<unsigned char>(ch))) ch = '_';
  }
  return name;
}

INSTANTIATE_TEST_SUITE_P(Flavours, GoldenTest, ::testing::ValuesIn(LoadCases()), CaseName);

// The cases files themselves: names unique, every golden file of a flavour's
// folder read by one of its cases (none left unchecked), every flavour with
// golden files has cases.
TEST(GoldenCasesTest, EveryGoldenFileIsACase) {
  std::map<std::string, std::set<std::string>> used;  // flavour -> body files
  std::set<std::string> names;
  for (const GoldenCase& c : LoadCases()) {
    EXPECT_TRUE(names.insert(CaseName({c, 0})).second) << "repeated case " << c.name;
    const json::object& want = c.fields.at("expect").as_object();
    if (want.contains("body_file")) used[c.flavour].insert(Text(want, "body_file"));
  }
  EXPECT_FALSE(used.empty());
  for (const auto& dir : fs::directory_iterator(OPENIMDS_TESTDATA_DIR)) {
    if (!dir.is_directory()) continue;
    for (const auto& file : fs::directory_iterator(dir.path())) {
      if (file.path().extension() != ".golden") continue;
      const std::string flavour = dir.path().filename().string();
      EXPECT_TRUE(used[flavour].contains(file.path().filename().string()))
          << file.path() << " is read by no case of " << flavour << "/cases.json";
    }
  }
}

}  // namespace
}  // namespace openimds::service
