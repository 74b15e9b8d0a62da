#include "admin/admin_api.h"

#include <condition_variable>
#include <mutex>

#include <gtest/gtest.h>

#include <future>
#include <stdlib.h>

#include <atomic>
#include <boost/json/parse.hpp>
#include <boost/json/serialize.hpp>
#include <filesystem>
#include <memory>
#include <optional>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "catalog/catalog.h"
#include "common/blocking_wait.h"
#include "common/ip_address.h"
#include "common/metrics.h"
#include "model/instance_json.h"
#include "store/sqlite_store.h"

namespace openimds::admin {
namespace {

using Headers = std::vector<std::pair<std::string, std::string>>;

// Owns the bytes a common::Request views.
struct Call {
  std::string method;
  std::string target;
  std::string body;
  Headers headers;
};

// A call the handler may have deferred: the request (viewing `call`'s bytes)
// and the first answer.
struct Started {
  std::unique_ptr<Call> call;
  common::Request request;
  common::Response out;
};

std::unique_ptr<Started> Start(AdminApi& api, const Call& call) {
  auto started = std::make_unique<Started>();
  started->call = std::make_unique<Call>(call);
  const Call& c = *started->call;
  common::Request& request = started->request;
  request.method = c.method;
  request.target = c.target;
  const size_t q = c.target.find('?');
  request.path = std::string_view(c.target).substr(0, q);
  if (q != std::string::npos) request.query = std::string_view(c.target).substr(q + 1);
  for (const auto& [name, value] : c.headers) request.headers.push_back({name, value});
  request.body = c.body;
  api.Handle(request, started->out);
  return started;
}

common::Response Finish(AdminApi& api, Started& started) {
  common::Response& out = started.out;
  if (out.deferred) {
    // What the http core does with a deferred write: wait until it is
    // ready, then call the handler again with the Deferred.
    std::shared_ptr<common::Deferred> pending = std::move(out.deferred);
    EXPECT_TRUE(common::WaitReady(*pending));
    out.Clear();
    started.request.resumed = true;
    started.request.resumed_from = pending;
    api.Handle(started.request, out);
    EXPECT_FALSE(out.deferred) << "deferred twice";
  }
  return out;
}

common::Response Do(AdminApi& api, const Call& call) {
  auto started = Start(api, call);
  return Finish(api, *started);
}

std::optional<std::string> HeaderOf(const common::Response& r, std::string_view name) {
  for (const auto& [n, v] : r.headers) {
    if (common::EqualsIgnoreCase(n, name)) return v;
  }
  return std::nullopt;
}

boost::json::value JsonOf(const common::Response& r) { return boost::json::parse(r.body); }

std::string ErrorCode(const common::Response& r) {
  return std::string(JsonOf(r).at("error").at("code").as_string());
}
std::string ErrorMessage(const common::Response& r) {
  return std::string(JsonOf(r).at("error").at("message").as_string());
}

std::string Etag(int64_t revision) { return "\"" + std::to_string(revision) + "\""; }

int64_t RevisionOf(const common::Response& r) {
  std::string etag = HeaderOf(r, "ETag").value_or("\"0\"");
  return std::stoll(etag.substr(1, etag.size() - 2));
}

std::string InstanceJson(const std::string& id, const std::string& network, const std::string& ip,
                         const std::string& mac = "02:00:00:00:00:01") {
  return R"({"id":")" + id + R"(","network":")" + network + R"(","nics":[{"mac":")" + mac +
         R"(","private_ipv4s":[")" + ip + R"("]}]})";
}

class AdminApiTest : public ::testing::Test {
 protected:
  void SetUp() override {
    char pattern[] = "/tmp/openimds-admin-test-XXXXXX";
    ASSERT_NE(mkdtemp(pattern), nullptr);
    dir_ = pattern;
    store::SqliteStore::Options options;
    options.path = dir_ + "/store.db";
    options.synchronous = store::SqliteStore::Options::Synchronous::kNormal;
    auto opened = store::SqliteStore::Open(options);
    ASSERT_TRUE(opened.ok()) << opened.status().ToString();
    store_ = std::move(*opened);
    follower_ = std::make_unique<feed::Follower>(feed::Follower::Options{}, *store_, catalog_,
                                                 metrics_);
    ASSERT_TRUE(follower_->Load().ok());
    follower_->Start();
    writes_ = std::make_unique<store::WriteQueue>(*store_);
    MakeApi({});
  }
  void TearDown() override {
    api_.reset();
    writes_.reset();
    follower_.reset();
    store_.reset();
    std::filesystem::remove_all(dir_);
  }

  void MakeApi(AdminApi::Options options) {
    if (!options.store_healthy) options.store_healthy = [this] { return store_healthy_.load(); };
    api_ = std::make_unique<AdminApi>(std::move(options), *store_, catalog_, *writes_, *follower_,
                                      metrics_);
  }

  common::Response Put(const std::string& id, const std::string& body, Headers headers = {}) {
    return Do(*api_, {"PUT", "/v1/instances/" + id, body, std::move(headers)});
  }
  common::Response Get(const std::string& id, Headers headers = {}) {
    return Do(*api_, {"GET", "/v1/instances/" + id, "", std::move(headers)});
  }
  common::Response Patch(const std::string& id, const std::string& body, Headers headers = {}) {
    headers.emplace_back("Content-Type", "application/merge-patch+json");
    return Do(*api_, {"PATCH", "/v1/instances/" + id, body, std::move(headers)});
  }
  common::Response Delete(const std::string& id, Headers headers = {}) {
    return Do(*api_, {"DELETE", "/v1/instances/" + id, "", std::move(headers)});
  }
  common::Response Import(const std::string& body) {
    return Do(*api_, {"POST", "/v1/instances:import", body, {}});
  }
  common::Response List(const std::string& query = "") {
    return Do(*api_, {"GET", "/v1/instances" + query, "", {}});
  }

  // The id of the instance answering from (network, ip) in the catalog, or "".
  std::string CatalogHolder(const std::string& network, const std::string& ip) {
    const model::Instance* found =
        catalog_.Current()->FindByAddress(network, *common::IpAddress::Parse(ip));
    return found == nullptr ? "" : found->id;
  }

  uint64_t Rejected(std::string_view reason) {
    return metrics_.CounterValue("admin_requests_rejected_total",
                                 "reason=\"" + std::string(reason) + "\"");
  }

  std::string dir_;
  std::unique_ptr<store::SqliteStore> store_;
  catalog::Catalog catalog_;
  common::MetricsRegistry metrics_;
  std::unique_ptr<feed::Follower> follower_;
  std::unique_ptr<store::WriteQueue> writes_;
  std::atomic<bool> store_healthy_{true};
  std::unique_ptr<AdminApi> api_;
};

TEST_F(AdminApiTest, PutCreatesThenReplacesAndGetReturnsIt) {
  common::Response created = Put("i-1", InstanceJson("i-1", "net-a", "10.0.0.5"));
  ASSERT_EQ(created.status, 201) << created.body;
  EXPECT_EQ(created.content_type, "application/json");
  EXPECT_EQ(HeaderOf(created, "Location"), "/v1/instances/i-1");
  const int64_t rev1 = RevisionOf(created);
  EXPECT_GT(rev1, 0);
  EXPECT_EQ(JsonOf(created).at("id"), "i-1");

  common::Response got = Get("i-1");
  ASSERT_EQ(got.status, 200);
  EXPECT_EQ(HeaderOf(got, "ETag"), Etag(rev1));
  auto parsed = model::FromJson(JsonOf(got));
  ASSERT_TRUE(parsed.ok()) << parsed.status().ToString();
  EXPECT_EQ(parsed->network, "net-a");

  common::Response replaced = Put("i-1", InstanceJson("i-1", "net-a", "10.0.0.6"));
  ASSERT_EQ(replaced.status, 200) << replaced.body;
  EXPECT_FALSE(HeaderOf(replaced, "Location"));
  EXPECT_GT(RevisionOf(replaced), rev1);
  EXPECT_EQ(RevisionOf(Get("i-1")), RevisionOf(replaced));

  // The store agrees with what the API answered.
  auto stored = store_->Get("i-1");
  ASSERT_TRUE(stored.ok());
  EXPECT_EQ(stored->revision, RevisionOf(replaced));
  ASSERT_EQ(stored->instance.nics.size(), 1u);
  ASSERT_EQ(stored->instance.nics[0].private_ipv4s.size(), 1u);
  EXPECT_EQ(stored->instance.nics[0].private_ipv4s[0], "10.0.0.6");
}

TEST_F(AdminApiTest, PutTakesIdFromUrlAndRefusesAMismatch) {
  common::Response created = Put("i-2", R"({"network":"n"})");
  ASSERT_EQ(created.status, 201) << created.body;
  EXPECT_EQ(JsonOf(created).at("id"), "i-2");

  common::Response mismatch = Put("i-2", R"({"id":"i-3"})");
  EXPECT_EQ(mismatch.status, 400);
  EXPECT_EQ(ErrorCode(mismatch), "invalid_argument");
  EXPECT_EQ(ErrorMessage(mismatch).rfind("/id:", 0), 0u) << ErrorMessage(mismatch);
  EXPECT_FALSE(store_->Get("i-3").ok());
}

TEST_F(AdminApiTest, GetAbsentIs404Json) {
  common::Response r = Get("nope");
  EXPECT_EQ(r.status, 404);
  EXPECT_EQ(r.content_type, "application/json");
  EXPECT_EQ(ErrorCode(r), "not_found");
  EXPECT_NE(ErrorMessage(r).find("nope"), std::string::npos);
}

TEST_F(AdminApiTest, GetWithMatchingIfNoneMatchIs304) {
  const int64_t rev = RevisionOf(Put("i-1", R"({})"));
  common::Response same = Get("i-1", {{"If-None-Match", Etag(rev)}});
  EXPECT_EQ(same.status, 304);
  EXPECT_TRUE(same.body.empty());
  common::Response other = Get("i-1", {{"If-None-Match", Etag(rev + 100)}});
  EXPECT_EQ(other.status, 200);
}

TEST_F(AdminApiTest, ConditionalPuts) {
  const int64_t rev = RevisionOf(Put("i-1", R"({})"));
  struct Case {
    const char* name;
    Headers headers;
    int status;
  };
  const Case cases[] = {
      {"stale quoted", {{"If-Match", Etag(rev + 1000)}}, 412},
      {"create-only on existing", {{"If-None-Match", "*"}}, 412},
      {"garbage If-Match", {{"If-Match", "W/\"x\""}}, 400},
      {"zero revision", {{"If-Match", "0"}}, 400},
      {"both headers", {{"If-Match", Etag(rev)}, {"If-None-Match", "*"}}, 400},
      {"If-None-Match revision", {{"If-None-Match", Etag(rev)}}, 400},
      {"duplicate If-Match", {{"If-Match", Etag(rev)}, {"If-Match", Etag(rev)}}, 400},
  };
  for (const auto& c : cases) {
    common::Response r = Put("i-1", R"({"name":"changed"})", c.headers);
    EXPECT_EQ(r.status, c.status) << c.name << ": " << r.body;
  }
  // None of them wrote.
  EXPECT_EQ(RevisionOf(Get("i-1")), rev);

  // A current revision, quoted or bare, and "*" all succeed in turn.
  common::Response quoted = Put("i-1", R"({"name":"a"})", {{"If-Match", Etag(rev)}});
  ASSERT_EQ(quoted.status, 200) << quoted.body;
  const int64_t rev2 = RevisionOf(quoted);
  common::Response bare = Put("i-1", R"({"name":"b"})", {{"If-Match", std::to_string(rev2)}});
  ASSERT_EQ(bare.status, 200) << bare.body;
  common::Response any = Put("i-1", R"({"name":"c"})", {{"If-Match", "*"}});
  ASSERT_EQ(any.status, 200) << any.body;
  EXPECT_EQ(JsonOf(Get("i-1")).at("name"), "c");

  // If-Match on an absent instance; If-None-Match: * creates.
  EXPECT_EQ(Put("i-9", R"({})", {{"If-Match", "*"}}).status, 412);
  EXPECT_EQ(Put("i-9", R"({})", {{"If-Match", Etag(rev2)}}).status, 412);
  EXPECT_EQ(Put("i-9", R"({})", {{"If-None-Match", "*"}}).status, 201);
}

TEST_F(AdminApiTest, ValidationErrorsAre400WithPointer) {
  common::Response bad_mac =
      Put("i-1", R"({"nics":[{"mac":"not-a-mac","private_ipv4s":["10.0.0.1"]}]})");
  ASSERT_EQ(bad_mac.status, 400);
  EXPECT_EQ(ErrorCode(bad_mac), "invalid_argument");
  EXPECT_EQ(ErrorMessage(bad_mac).rfind("/nics/0/mac", 0), 0u) << ErrorMessage(bad_mac);

  common::Response unknown = Put("i-1", R"({"colour":"red"})");
  ASSERT_EQ(unknown.status, 400);
  EXPECT_EQ(ErrorMessage(unknown).rfind("/colour", 0), 0u) << ErrorMessage(unknown);

  common::Response syntax = Put("i-1", R"({"name":)");
  ASSERT_EQ(syntax.status, 400);
  EXPECT_EQ(ErrorMessage(syntax).rfind("invalid JSON", 0), 0u) << ErrorMessage(syntax);
  EXPECT_FALSE(store_->Get("i-1").ok());
}

TEST_F(AdminApiTest, AddressClashIs409NamingTheHolder) {
  ASSERT_EQ(Put("holder", InstanceJson("holder", "net-a", "10.0.0.5")).status, 201);
  common::Response clash =
      Put("second", InstanceJson("second", "net-a", "10.0.0.5", "02:00:00:00:00:02"));
  ASSERT_EQ(clash.status, 409) << clash.body;
  EXPECT_EQ(ErrorCode(clash), "conflict");
  EXPECT_NE(ErrorMessage(clash).find("holder"), std::string::npos) << ErrorMessage(clash);
  EXPECT_EQ(CatalogHolder("net-a", "10.0.0.5"), "holder");
  // The same address in another network is another address.
  EXPECT_EQ(Put("second", InstanceJson("second", "net-b", "10.0.0.5")).status, 201);
  EXPECT_EQ(CatalogHolder("net-b", "10.0.0.5"), "second");
}

// An address that exists only in network_config (a static network) is
// claimed like a NIC's: it identifies the guest, so it must be unique too.
TEST_F(AdminApiTest, NetworkConfigStaticAddressClashIs409) {
  const std::string only_in_config = R"({"id":"cfg","network":"net-a","network_config":{
      "links":[{"name":"e0","type":"physical","mac":"02:00:00:00:00:0c"}],
      "networks":[{"link":"e0","address":"10.0.0.7/24"},
                  {"link":"e0","ip_version":6,"address":"fd00::7/64"}]}})";
  ASSERT_EQ(Put("cfg", only_in_config).status, 201);
  EXPECT_EQ(CatalogHolder("net-a", "10.0.0.7"), "cfg");
  EXPECT_EQ(CatalogHolder("net-a", "fd00::7"), "cfg");

  // A NIC claiming it: 409 naming the holder.
  common::Response clash =
      Put("nic", InstanceJson("nic", "net-a", "10.0.0.7", "02:00:00:00:00:0d"));
  ASSERT_EQ(clash.status, 409) << clash.body;
  EXPECT_EQ(ErrorCode(clash), "conflict");
  EXPECT_NE(ErrorMessage(clash).find("cfg"), std::string::npos) << ErrorMessage(clash);

  // Another record's network_config claiming a NIC's address: 409 too.
  ASSERT_EQ(Put("holder", InstanceJson("holder", "net-a", "10.0.0.5")).status, 201);
  common::Response clash2 = Put("cfg2", R"({"id":"cfg2","network":"net-a","network_config":{
      "links":[{"name":"e0","type":"physical","mac":"02:00:00:00:00:0e"}],
      "networks":[{"link":"e0","address":"10.0.0.5/24"}]}})");
  ASSERT_EQ(clash2.status, 409) << clash2.body;
  EXPECT_NE(ErrorMessage(clash2).find("holder"), std::string::npos) << ErrorMessage(clash2);

  // The same within one import.
  common::Response import = Import(
      R"({"id":"i1","network":"net-b","nics":[{"mac":"02:00:00:00:00:01","private_ipv4s":["10.1.0.5"]}]})"
      "\n"
      R"({"id":"i2","network":"net-b","network_config":{"links":[{"name":"e0","type":"physical","mac":"02:00:00:00:00:02"}],"networks":[{"link":"e0","address":"10.1.0.5/16"}]}})");
  ASSERT_EQ(import.status, 409) << import.body;
  EXPECT_EQ(CatalogHolder("net-b", "10.1.0.5"), "");

  // Dropping the static network frees the address.
  ASSERT_EQ(Put("cfg", R"({"id":"cfg","network":"net-a"})").status, 200);
  EXPECT_EQ(Put("nic", InstanceJson("nic", "net-a", "10.0.0.7", "02:00:00:00:00:0d")).status, 201);
  EXPECT_EQ(CatalogHolder("net-a", "10.0.0.7"), "nic");
}

TEST_F(AdminApiTest, PatchMergesPerRfc7396) {
  const std::string full = R"({
    "id": "i-1", "network": "n", "name": "web",
    "tags": {"env": "dev", "team": "core"},
    "ssh_keys": [{"name": "a", "key": "ssh-ed25519 AAAA a"},
                 {"name": "b", "key": "ssh-ed25519 BBBB b"}],
    "metadata_options": {"http_tokens": "required", "hop_limit": 1, "http_endpoint": "enabled",
                         "instance_metadata_tags": "disabled"}
  })";
  const int64_t rev = RevisionOf(Put("i-1", full));
  common::Response patched = Patch("i-1", R"({
    "name": null,
    "tags": {"env": "prod", "team": null, "new": "x"},
    "ssh_keys": [{"name": "c", "key": "ssh-ed25519 CCCC c"}],
    "metadata_options": {"hop_limit": 3}
  })");
  ASSERT_EQ(patched.status, 200) << patched.body;
  EXPECT_GT(RevisionOf(patched), rev);

  auto got = model::FromJson(JsonOf(Get("i-1")));
  ASSERT_TRUE(got.ok());
  EXPECT_EQ(got->name, "");  // null deleted it
  EXPECT_EQ(got->tags, (model::StringMap{{"env", "prod"}, {"new", "x"}}));
  ASSERT_EQ(got->ssh_keys.size(), 1u);  // arrays replace
  EXPECT_EQ(got->ssh_keys[0].name, "c");
  EXPECT_EQ(got->options.hop_limit, 3);  // nested objects merge...
  EXPECT_EQ(got->options.http_tokens, model::MetadataOptions::HttpTokens::kRequired);  // ...keeping
  EXPECT_EQ(got->network, "n");
}

TEST_F(AdminApiTest, PatchRefusals) {
  const int64_t rev = RevisionOf(Put("i-1", R"({"name":"web"})"));
  struct Case {
    const char* name;
    std::string id;
    std::string body;
    Headers headers;
    int status;
    std::string message_part;
  };
  const Case cases[] = {
      {"id change", "i-1", R"({"id":"i-2"})", {}, 400, "/id"},
      {"id null", "i-1", R"({"id":null})", {}, 400, "/id"},
      {"stale If-Match",
       "i-1",
       R"({"name":"x"})",
       {{"If-Match", Etag(rev + 5)}},
       412,
       std::to_string(rev)},
      {"absent", "i-404", R"({"name":"x"})", {}, 404, "i-404"},
      {"not an object", "i-1", R"([1])", {}, 400, "object"},
      {"invalid result",
       "i-1",
       R"({"metadata_options":{"hop_limit":0}})",
       {},
       400,
       "/metadata_options/hop_limit"},
      {"syntax", "i-1", R"({)", {}, 400, "invalid JSON"},
  };
  for (const auto& c : cases) {
    common::Response r = Patch(c.id, c.body, c.headers);
    EXPECT_EQ(r.status, c.status) << c.name << ": " << r.body;
    EXPECT_NE(ErrorMessage(r).find(c.message_part), std::string::npos) << c.name << ": " << r.body;
  }
  common::Response form = Do(*api_, {"PATCH",
                                     "/v1/instances/i-1",
                                     R"({"name":"x"})",
                                     {{"Content-Type", "application/x-www-form-urlencoded"}}});
  EXPECT_EQ(form.status, 400);
  EXPECT_NE(ErrorMessage(form).find("merge-patch"), std::string::npos);
  common::Response json_patch = Do(
      *api_,
      {"PATCH", "/v1/instances/i-1", R"([])", {{"Content-Type", "application/json-patch+json"}}});
  EXPECT_EQ(json_patch.status, 400);

  EXPECT_EQ(RevisionOf(Get("i-1")), rev);  // nothing written
  // The same id in the patch is fine; plain application/json is accepted.
  common::Response ok =
      Do(*api_, {"PATCH",
                 "/v1/instances/i-1",
                 R"({"id":"i-1","name":"x"})",
                 {{"Content-Type", "application/json; charset=utf-8"}, {"If-Match", Etag(rev)}}});
  EXPECT_EQ(ok.status, 200) << ok.body;
}

TEST_F(AdminApiTest, PatchThatChangesNothingKeepsTheRevision) {
  const int64_t rev = RevisionOf(Put("i-1", R"({"name":"web"})"));
  common::Response r = Patch("i-1", R"({"name":"web"})");
  ASSERT_EQ(r.status, 200) << r.body;
  EXPECT_EQ(RevisionOf(r), rev);
  EXPECT_EQ(store_->Get("i-1")->revision, rev);
}

TEST_F(AdminApiTest, DeleteWithPreconditions) {
  const int64_t rev = RevisionOf(Put("i-1", InstanceJson("i-1", "n", "10.0.0.1")));
  EXPECT_EQ(Delete("i-1", {{"If-Match", Etag(rev + 1)}}).status, 412);
  EXPECT_EQ(CatalogHolder("n", "10.0.0.1"), "i-1");
  common::Response deleted = Delete("i-1", {{"If-Match", Etag(rev)}});
  EXPECT_EQ(deleted.status, 204);
  EXPECT_TRUE(deleted.body.empty());
  EXPECT_EQ(CatalogHolder("n", "10.0.0.1"), "");
  EXPECT_EQ(Get("i-1").status, 404);
  EXPECT_EQ(Delete("i-1").status, 404);
  EXPECT_EQ(Delete("i-1", {{"If-Match", "*"}}).status, 412);
}

TEST_F(AdminApiTest, CatalogFollowsEveryWriteBeforeHandleReturns) {
  ASSERT_EQ(Put("i-1", InstanceJson("i-1", "n", "10.0.0.1")).status, 201);
  EXPECT_EQ(CatalogHolder("n", "10.0.0.1"), "i-1");

  ASSERT_EQ(
      Patch("i-1", R"({"nics":[{"mac":"02:00:00:00:00:01","private_ipv4s":["10.0.0.2"]}]})").status,
      200);
  EXPECT_EQ(CatalogHolder("n", "10.0.0.1"), "");
  EXPECT_EQ(CatalogHolder("n", "10.0.0.2"), "i-1");
  EXPECT_EQ(catalog_.Current()->FindById("i-1")->revision, store_->Get("i-1")->revision);

  ASSERT_EQ(Import(InstanceJson("i-2", "n", "10.0.0.3") + "\n").status, 200);
  EXPECT_EQ(CatalogHolder("n", "10.0.0.3"), "i-2");

  ASSERT_EQ(Delete("i-1").status, 204);
  EXPECT_EQ(CatalogHolder("n", "10.0.0.2"), "");
  EXPECT_EQ(catalog_.Current()->FindById("i-1"), nullptr);
}

TEST_F(AdminApiTest, ImportWritesAllAndReportsRevisions) {
  const std::string body = InstanceJson("a", "n", "10.0.0.1") + "\n\n" +
                           InstanceJson("b", "n", "10.0.0.2") + "\r\n   \n" +
                           InstanceJson("c", "m", "10.0.0.1");       // no final newline
  common::Response r = Do(*api_, {"POST", "/v1/import", body, {}});  // the short alias
  ASSERT_EQ(r.status, 200) << r.body;
  auto json = JsonOf(r);
  EXPECT_EQ(json.at("imported").to_number<int64_t>(), 3);
  const int64_t first = json.at("revision_first").to_number<int64_t>();
  const int64_t last = json.at("revision_last").to_number<int64_t>();
  EXPECT_LT(first, last);
  EXPECT_EQ(store_->Get("a")->revision, first);
  EXPECT_EQ(store_->Get("c")->revision, last);
  EXPECT_EQ(CatalogHolder("n", "10.0.0.2"), "b");
  EXPECT_EQ(CatalogHolder("m", "10.0.0.1"), "c");
  EXPECT_EQ(metrics_.CounterValue("admin_instances_imported_total"), 3u);
}

TEST_F(AdminApiTest, ImportIsAllOrNothing) {
  const std::string body =
      InstanceJson("a", "n", "10.0.0.1") + "\n" + InstanceJson("b", "n", "10.0.0.2") + "\n" +
      R"({"id":"c","nics":[{"mac":"zz"}]})" + "\n" + InstanceJson("d", "n", "10.0.0.4") + "\n";
  common::Response r = Import(body);
  ASSERT_EQ(r.status, 400) << r.body;
  EXPECT_EQ(ErrorMessage(r).rfind("line 3: /nics/0/mac", 0), 0u) << ErrorMessage(r);
  auto listed = store_->List();
  ASSERT_TRUE(listed.ok());
  EXPECT_TRUE(listed->empty());
  EXPECT_EQ(catalog_.Current()->size(), 0u);
}

TEST_F(AdminApiTest, ImportRefusals) {
  ASSERT_EQ(Put("old", InstanceJson("old", "n", "10.0.0.9")).status, 201);
  struct Case {
    const char* name;
    std::string body;
    int status;
    std::vector<std::string> message_parts;
  };
  const Case cases[] = {
      {"duplicate id",
       InstanceJson("a", "n", "10.0.0.1") + "\n" + R"({"id":"a"})",
       400,
       {"line 2", "line 1"}},
      {"clash inside the import",
       InstanceJson("a", "n", "10.0.0.1") + "\n\n" +
           InstanceJson("b", "n", "10.0.0.1", "02:00:00:00:00:02"),
       409,
       {"line 3", "line 1", "10.0.0.1"}},
      {"clash with a stored instance", InstanceJson("a", "n", "10.0.0.9"), 409, {"line 1", "old"}},
      {"syntax", "{\n", 400, {"line 1: invalid JSON"}},
      {"empty", "\n \n", 400, {"no instances"}},
  };
  for (const auto& c : cases) {
    common::Response r = Import(c.body);
    EXPECT_EQ(r.status, c.status) << c.name << ": " << r.body;
    for (const auto& part : c.message_parts) {
      EXPECT_NE(ErrorMessage(r).find(part), std::string::npos) << c.name << ": " << r.body;
    }
  }
  EXPECT_EQ(store_->List()->size(), 1u);

  // Replacing the holder in the same import frees its address.
  common::Response moved = Import(InstanceJson("old", "n", "10.0.0.8") + "\n" +
                                  InstanceJson("new", "n", "10.0.0.9", "02:00:00:00:00:02"));
  ASSERT_EQ(moved.status, 200) << moved.body;
  EXPECT_EQ(CatalogHolder("n", "10.0.0.9"), "new");
}

TEST_F(AdminApiTest, ImportOverTheLimitIs413) {
  AdminApi::Options options;
  options.max_import_bytes = 100;
  MakeApi(options);
  const std::string body =
      InstanceJson("a", "n", "10.0.0.1") + "\n" + InstanceJson("b", "n", "10.0.0.2") + "\n";
  ASSERT_GT(body.size(), 100u);
  common::Response r = Import(body);
  EXPECT_EQ(r.status, 413);
  EXPECT_EQ(ErrorCode(r), "payload_too_large");
  EXPECT_TRUE(store_->List()->empty());
  EXPECT_EQ(Import(InstanceJson("a", "n", "10.0.0.1")).status, 200);  // 64 bytes fit
}

// The CLI's batched import: numbered parts of one stream, several in flight.
Call StreamPart(const std::string& stream, int part, std::string body) {
  return {"POST", "/v1/instances:import", std::move(body),
          {{"X-OpenIMDS-Import-Stream", stream},
           {"X-OpenIMDS-Import-Part", std::to_string(part)}}};
}

TEST_F(AdminApiTest, ImportStreamCommitsPartsInOrder) {
  // Part 2 arrives first: it waits for part 1, then wins over it.
  auto second = Start(*api_, StreamPart("s1", 2, InstanceJson("a", "n", "10.0.0.2")));
  ASSERT_TRUE(second->out.deferred) << second->out.body;
  std::this_thread::sleep_for(std::chrono::milliseconds(50));
  EXPECT_TRUE(store_->List()->empty()) << "part 2 committed before part 1";

  common::Response first =
      Do(*api_, StreamPart("s1", 1,
                           InstanceJson("a", "n", "10.0.0.1") + "\n" +
                               InstanceJson("b", "n", "10.0.0.9", "02:00:00:00:00:02")));
  ASSERT_EQ(first.status, 200) << first.body;
  common::Response r = Finish(*api_, *second);
  ASSERT_EQ(r.status, 200) << r.body;
  EXPECT_EQ(CatalogHolder("n", "10.0.0.2"), "a");
  EXPECT_EQ(CatalogHolder("n", "10.0.0.1"), "");

  // Part 3 takes the address part 2 gave up, even if this node's catalog
  // were still behind: the store judges it.
  r = Do(*api_, StreamPart("s1", 3, InstanceJson("c", "n", "10.0.0.1", "02:00:00:00:00:03")));
  ASSERT_EQ(r.status, 200) << r.body;
  EXPECT_EQ(CatalogHolder("n", "10.0.0.1"), "c");
  EXPECT_EQ(store_->List()->size(), 3u);

  // A part sent twice is refused, and so is everything after it.
  r = Do(*api_, StreamPart("s1", 3, InstanceJson("d", "n", "10.0.0.4")));
  EXPECT_EQ(r.status, 409) << r.body;
  EXPECT_NE(ErrorMessage(r).find("already sent"), std::string::npos) << r.body;
  r = Do(*api_, StreamPart("s1", 4, InstanceJson("d", "n", "10.0.0.4")));
  EXPECT_EQ(r.status, 409) << r.body;
  EXPECT_NE(ErrorMessage(r).find("not applied"), std::string::npos) << r.body;
  EXPECT_EQ(store_->List()->size(), 3u);
}

TEST_F(AdminApiTest, ImportStreamAppliesNothingAfterARefusedPart) {
  ASSERT_EQ(Put("old", InstanceJson("old", "n", "10.0.0.9")).status, 201);
  // Refused by the store (a later part skips the catalog's check): the
  // message names the line, and the part after it is not applied.
  auto third = Start(*api_, StreamPart("s2", 3, InstanceJson("z", "n", "10.0.0.3")));
  ASSERT_TRUE(third->out.deferred) << third->out.body;
  common::Response r = Do(*api_, StreamPart("s2", 1, InstanceJson("a", "n", "10.0.0.1")));
  ASSERT_EQ(r.status, 200) << r.body;
  r = Do(*api_, StreamPart("s2", 2,
                           InstanceJson("b", "n", "10.0.0.2") + "\n\n" +
                               InstanceJson("c", "n", "10.0.0.9", "02:00:00:00:00:03")));
  EXPECT_EQ(r.status, 409) << r.body;
  EXPECT_NE(ErrorMessage(r).find("line 3 (c)"), std::string::npos) << r.body;
  EXPECT_NE(ErrorMessage(r).find("old"), std::string::npos) << r.body;
  r = Finish(*api_, *third);
  EXPECT_EQ(r.status, 409) << r.body;
  EXPECT_NE(ErrorMessage(r).find("part 2 was refused"), std::string::npos) << r.body;
  auto listed = store_->List();
  ASSERT_EQ(listed->size(), 2u);  // old and a
  EXPECT_FALSE(store_->Get("z").ok());

  // Part 1 refused before it reached the store (bad JSON): part 2 hears why.
  r = Do(*api_, StreamPart("s3", 1, "{"));
  EXPECT_EQ(r.status, 400) << r.body;
  r = Do(*api_, StreamPart("s3", 2, InstanceJson("y", "n", "10.0.0.5")));
  EXPECT_EQ(r.status, 409) << r.body;
  EXPECT_NE(ErrorMessage(r).find("part 1 was refused"), std::string::npos) << r.body;
  EXPECT_FALSE(store_->Get("y").ok());
}

// Parts that arrive while the writer is busy are queued behind one another
// and may commit in one transaction; the order and the refusal rule hold
// there too: the part before the refused one commits, the one after does not.
TEST_F(AdminApiTest, ImportStreamPartsQueuedTogetherKeepTheRules) {
  ASSERT_EQ(Put("old", InstanceJson("old", "n", "10.0.0.9")).status, 201);
  // Hold the write queue's thread inside a commit until the parts are queued.
  std::promise<void> release;
  std::shared_future<void> released = release.get_future().share();
  std::promise<void> holding;
  store::Write hold;
  hold.mutations.push_back(store::Mutation{
      "holder", [&, released](const store::StoredInstance*)
                    -> common::Result<std::optional<model::Instance>> {
        holding.set_value();
        released.wait();
        return common::FailedPrecondition("held only");
      }});
  std::promise<store::WriteOutcome> held_outcome;
  writes_->Submit(std::move(hold),
                  [&](store::WriteOutcome o) { held_outcome.set_value(std::move(o)); });
  holding.get_future().wait();

  auto first = Start(*api_, StreamPart("g", 1, InstanceJson("a", "n", "10.0.0.1")));
  auto second = Start(*api_, StreamPart("g", 2, InstanceJson("b", "n", "10.0.0.9")));  // old's
  auto third = Start(*api_, StreamPart("g", 3, InstanceJson("c", "n", "10.0.0.3")));
  ASSERT_TRUE(first->out.deferred && second->out.deferred && third->out.deferred);
  release.set_value();
  EXPECT_EQ(held_outcome.get_future().get().status.code(), common::Code::kFailedPrecondition);

  common::Response r = Finish(*api_, *first);
  EXPECT_EQ(r.status, 200) << r.body;
  r = Finish(*api_, *second);
  EXPECT_EQ(r.status, 409) << r.body;
  EXPECT_NE(ErrorMessage(r).find("held by instance old"), std::string::npos) << r.body;
  r = Finish(*api_, *third);
  EXPECT_EQ(r.status, 409) << r.body;
  EXPECT_NE(ErrorMessage(r).find("part 2 was refused"), std::string::npos) << r.body;
  EXPECT_TRUE(store_->Get("a").ok());
  EXPECT_FALSE(store_->Get("b").ok());
  EXPECT_FALSE(store_->Get("c").ok());
  // A fourth part after the refusal is refused at once.
  r = Do(*api_, StreamPart("g", 4, InstanceJson("d", "n", "10.0.0.4")));
  EXPECT_EQ(r.status, 409) << r.body;
  EXPECT_FALSE(store_->Get("d").ok());
}

// The parts travel on different connections and arrive in any order. A part
// refused before the parts around it arrive stops the later ones, which must
// not wait for it, and the earlier ones still commit, whenever they come.
TEST_F(AdminApiTest, AnImportPartRefusedBeforeTheOthersArriveStopsOnlyTheLaterOnes) {
  common::Response r = Do(*api_, StreamPart("o", 2, "{\"id\":7}\n"));  // refused first
  EXPECT_EQ(r.status, 400) << r.body;
  auto third = Start(*api_, StreamPart("o", 3, InstanceJson("c", "n", "10.0.0.3")));
  ASSERT_FALSE(third->out.deferred) << "part 3 waits for part 2, which will never come";
  EXPECT_EQ(third->out.status, 409) << third->out.body;
  EXPECT_NE(ErrorMessage(third->out).find("part 2 was refused"), std::string::npos);
  r = Do(*api_, StreamPart("o", 1, InstanceJson("a", "n", "10.0.0.1")));
  EXPECT_EQ(r.status, 200) << r.body;
  EXPECT_TRUE(store_->Get("a").ok());
  EXPECT_FALSE(store_->Get("c").ok());

  // A part parked behind a gap stays parked when a later part is refused.
  auto fourth = Start(*api_, StreamPart("p", 2, InstanceJson("d", "n", "10.0.0.4")));
  ASSERT_TRUE(fourth->out.deferred);
  r = Do(*api_, StreamPart("p", 3, "{\"id\":7}\n"));
  EXPECT_EQ(r.status, 400) << r.body;
  r = Do(*api_, StreamPart("p", 1, InstanceJson("e", "n", "10.0.0.5")));
  EXPECT_EQ(r.status, 200) << r.body;
  r = Finish(*api_, *fourth);
  EXPECT_EQ(r.status, 200) << r.body;
  EXPECT_TRUE(store_->Get("d").ok());
  EXPECT_TRUE(store_->Get("e").ok());
}

TEST_F(AdminApiTest, ImportStreamHeaderRefusals) {
  const std::string body = InstanceJson("a", "n", "10.0.0.1");
  struct Case {
    Headers headers;
    int status;
    const char* message;
  };
  const Case cases[] = {
      {{{"X-OpenIMDS-Import-Stream", "s"}}, 400, "go together"},
      {{{"X-OpenIMDS-Import-Part", "1"}}, 400, "go together"},
      {{{"X-OpenIMDS-Import-Stream", "a/b"}, {"X-OpenIMDS-Import-Part", "1"}}, 400, "letters"},
      {{{"X-OpenIMDS-Import-Stream", "s"}, {"X-OpenIMDS-Import-Part", "0"}}, 400, "number"},
      {{{"X-OpenIMDS-Import-Stream", "s"}, {"X-OpenIMDS-Import-Part", "x"}}, 400, "number"},
  };
  for (const auto& c : cases) {
    common::Response r = Do(*api_, {"POST", "/v1/instances:import", body, c.headers});
    EXPECT_EQ(r.status, c.status) << r.body;
    EXPECT_NE(ErrorMessage(r).find(c.message), std::string::npos) << r.body;
  }
  EXPECT_TRUE(store_->List()->empty());
  // Too far ahead of the last committed part.
  ASSERT_EQ(Do(*api_, StreamPart("s4", 1, body)).status, 200);
  common::Response r = Do(*api_, StreamPart("s4", 10, InstanceJson("b", "n", "10.0.0.2")));
  EXPECT_EQ(r.status, 429) << r.body;
  EXPECT_NE(ErrorMessage(r).find("too far ahead"), std::string::npos) << r.body;
  EXPECT_EQ(store_->List()->size(), 1u);
}

TEST_F(AdminApiTest, ListFilters) {
  ASSERT_EQ(Put("a", InstanceJson("a", "n1", "10.0.0.1")).status, 201);
  ASSERT_EQ(Put("b", InstanceJson("b", "n1", "10.0.0.2")).status, 201);
  ASSERT_EQ(Put("c", R"({"network":"n2","nics":[{"mac":"02:00:00:00:00:01",)"
                     R"("private_ipv4s":["10.0.0.1"],"ipv6s":["2001:db8::5"]}]})")
                .status,
            201);
  auto ids = [](const common::Response& r) {
    std::vector<std::string> out;
    const boost::json::value json = JsonOf(r);
    for (const auto& item : json.at("instances").as_array()) {
      EXPECT_GT(item.at("revision").to_number<int64_t>(), 0);
      out.emplace_back(item.at("instance").at("id").as_string());
    }
    return out;
  };
  struct Case {
    std::string query;
    std::vector<std::string> expected;
  };
  const Case cases[] = {
      {"", {"a", "b", "c"}},
      {"?network=n1", {"a", "b"}},
      {"?network=n2", {"c"}},
      {"?network=none", {}},
      {"?address=10.0.0.1", {"a", "c"}},
      {"?address=10.0.0.1&network=n2", {"c"}},
      {"?network=n1&address=10.0.0.2", {"b"}},
      {"?network=n1&address=10.0.0.9", {}},
      {"?address=2001:DB8:0:0::5", {"c"}},  // matched canonically
      {"?address=2001%3Adb8%3A%3A5&network=n2", {"c"}},
      {"?limit=2", {"a", "b"}},
      {"?limit=1&network=n1", {"a"}},
  };
  for (const auto& c : cases) {
    common::Response r = List(c.query);
    ASSERT_EQ(r.status, 200) << c.query << ": " << r.body;
    EXPECT_EQ(ids(r), c.expected) << c.query;
  }
  for (const char* bad :
       {"?address=10.0.0", "?limit=0", "?limit=x", "?colour=red", "?network=a&network=b"}) {
    common::Response r = List(bad);
    EXPECT_EQ(r.status, 400) << bad;
    EXPECT_EQ(ErrorCode(r), "invalid_argument") << bad;
  }
}

TEST_F(AdminApiTest, AWriteBehindTheApisBackReachesTheCatalogThroughTheFeed) {
  ASSERT_EQ(Put("a", R"({})").status, 201);
  // Written straight to the store, as another process would: the change
  // feed, not the admin API, brings it to the catalog.
  auto direct = model::FromJsonText(R"({"id":"hidden"})");
  ASSERT_TRUE(direct.ok());
  auto written = store_->Put(*direct, {});
  ASSERT_TRUE(written.ok());
  ASSERT_TRUE(follower_->WaitApplied(*written, std::chrono::seconds(10)));
  EXPECT_EQ(JsonOf(List()).at("instances").as_array().size(), 2u);
  EXPECT_EQ(catalog_.Current()->FindById("hidden")->revision, store_->Get("hidden")->revision);
}

TEST_F(AdminApiTest, DeleteClearsTheGuestsPasswordSoANewInstanceDoesNotInheritIt) {
  ASSERT_EQ(Put("pw", R"({})").status, 201);
  const std::string secret = store::InstancePasswordSecret("pw");
  ASSERT_TRUE(store_->GetOrCreateSecret(secret, "posted-by-the-guest").ok());
  // A refused delete (wrong If-Match) leaves it alone.
  EXPECT_EQ(Delete("pw", {{"If-Match", "\"999\""}}).status, 412);
  ASSERT_TRUE(store_->GetSecret(secret)->has_value());
  EXPECT_EQ(Delete("pw").status, 204);
  EXPECT_FALSE(store_->GetSecret(secret)->has_value());
  ASSERT_EQ(Put("pw", R"({})").status, 201);
  EXPECT_FALSE(store_->GetSecret(secret)->has_value());
}

TEST_F(AdminApiTest, RoutingErrors) {
  struct Case {
    std::string method;
    std::string target;
    int status;
    std::string code;
    std::optional<std::string> allow;
  };
  const std::string long_id(129, 'a');
  const Case cases[] = {
      {"GET", "/nope", 404, "not_found", std::nullopt},
      {"GET", "/v1/instances/i-1/other", 404, "not_found", std::nullopt},
      {"POST", "/v1/instances/i-1", 405, "method_not_allowed", "GET, HEAD, PUT, PATCH, DELETE"},
      {"DELETE", "/v1/instances", 405, "method_not_allowed", "GET, HEAD"},
      {"GET", "/v1/instances:import", 405, "method_not_allowed", "POST"},
      {"POST", "/healthz", 405, "method_not_allowed", "GET, HEAD"},
      {"PUT", "/v1/instances/i-1/render", 405, "method_not_allowed", "GET, HEAD"},
      {"GET", "/v1/instances/a%20b", 400, "invalid_argument", std::nullopt},
      {"GET", "/v1/instances/a%2Fb", 400, "invalid_argument", std::nullopt},
      {"GET", "/v1/instances/%zz", 400, "invalid_argument", std::nullopt},
      {"GET", "/v1/instances/", 400, "invalid_argument", std::nullopt},
      {"GET", "/v1/instances/" + long_id, 400, "invalid_argument", std::nullopt},
      {"GET", "/v1/instances/i-1?x=1", 400, "invalid_argument", std::nullopt},
  };
  for (const auto& c : cases) {
    common::Response r = Do(*api_, {c.method, c.target, "", {}});
    EXPECT_EQ(r.status, c.status) << c.method << " " << c.target;
    EXPECT_EQ(r.content_type, "application/json") << c.target;
    EXPECT_EQ(ErrorCode(r), c.code) << c.method << " " << c.target;
    EXPECT_EQ(HeaderOf(r, "Allow"), c.allow) << c.method << " " << c.target;
  }
  // Percent-encoded ids that decode to valid ones are accepted.
  ASSERT_EQ(Put("i%3A1", R"({})").status, 201);
  EXPECT_EQ(JsonOf(Get("i:1")).at("id"), "i:1");
}

TEST_F(AdminApiTest, EveryRefusalIsCounted) {
  ASSERT_EQ(Put("a", InstanceJson("a", "n", "10.0.0.1")).status, 201);
  struct Case {
    Call call;
    const char* reason;
  };
  const Case cases[] = {
      {{"GET", "/v1/instances/missing", "", {}}, "not_found"},
      {{"PUT", "/v1/instances/b", "{", {}}, "invalid_argument"},
      {{"PUT", "/v1/instances/b", InstanceJson("b", "n", "10.0.0.1", "02:00:00:00:00:02"), {}},
       "conflict"},
      {{"PUT", "/v1/instances/a", "{}", {{"If-Match", "\"999999\""}}}, "failed_precondition"},
      {{"POST", "/v1/instances/a", "", {}}, "method_not_allowed"},
  };
  for (const auto& c : cases) {
    const uint64_t before = Rejected(c.reason);
    common::Response r = Do(*api_, c.call);
    EXPECT_EQ(ErrorCode(r), c.reason) << c.call.method << " " << c.call.target;
    EXPECT_EQ(Rejected(c.reason), before + 1) << c.reason;
  }
  AdminApi::Options small;
  small.max_import_bytes = 1;
  MakeApi(small);
  EXPECT_EQ(Import("{}\n").status, 413);
  EXPECT_EQ(Rejected("payload_too_large"), 1u);
}

TEST_F(AdminApiTest, HealthReadinessAndMetrics) {
  common::Response health = Do(*api_, {"GET", "/healthz", "", {}});
  EXPECT_EQ(health.status, 200);
  EXPECT_EQ(health.body, "ok\n");

  common::Response ready = Do(*api_, {"GET", "/readyz", "", {}});
  EXPECT_EQ(ready.status, 200);
  EXPECT_EQ(ready.body, "ready\n");
  store_healthy_ = false;
  common::Response not_ready = Do(*api_, {"GET", "/readyz", "", {}});
  EXPECT_EQ(not_ready.status, 503);
  EXPECT_EQ(not_ready.body, "store unavailable\n");
  EXPECT_EQ(Do(*api_, {"GET", "/healthz", "", {}}).status, 200);  // alive all the same

  common::Response head = Do(*api_, {"HEAD", "/healthz", "", {}});
  EXPECT_EQ(head.status, 200);
  EXPECT_TRUE(head.head);

  Get("missing");  // one refusal to see in the exposition
  common::Response metrics = Do(*api_, {"GET", "/metrics", "", {}});
  EXPECT_EQ(metrics.status, 200);
  EXPECT_EQ(metrics.content_type, "text/plain; version=0.0.4");
  EXPECT_NE(metrics.body.find("admin_requests_rejected_total{reason=\"not_found\"} 1"),
            std::string::npos)
      << metrics.body;
  EXPECT_NE(metrics.body.find("admin_requests_rejected_total{reason=\"conflict\"} 0"),
            std::string::npos);
}

TEST_F(AdminApiTest, ReadyWithoutAHealthCheck) {
  api_ = std::make_unique<AdminApi>(AdminApi::Options{}, *store_, catalog_, *writes_, *follower_, metrics_);
  EXPECT_EQ(Do(*api_, {"GET", "/readyz", "", {}}).status, 200);
}

TEST_F(AdminApiTest, RenderDelegatesWithASyntheticGuestRequest) {
  struct Seen {
    std::string instance_id, method, target, path, query, network, peer, metadata_flavor, host;
  };
  auto seen = std::make_shared<Seen>();
  AdminApi::Options options;
  options.render_preview = [seen](const model::Instance& instance, const common::Request& request,
                                  common::Response& out) {
    seen->instance_id = instance.id;
    seen->method = std::string(request.method);
    seen->target = std::string(request.target);
    seen->path = std::string(request.path);
    seen->query = std::string(request.query);
    seen->network = std::string(request.listener_network);
    seen->peer = request.peer.ToString();
    seen->metadata_flavor = std::string(request.Header("Metadata-Flavor").value_or(""));
    seen->host = std::string(request.Header("Host").value_or(""));
    if (request.path == "/missing") {
      out.status = 404;
      out.content_type = "text/html";
      out.body = "<h1>404</h1>";
      return common::Status::Ok();
    }
    if (request.path == "/refuse") return common::NotFound("no metadata flavour serves /refuse");
    out.status = 200;
    out.content_type = "text/plain";
    out.body = instance.id;
    out.AddHeader("X-Flavour", "fake");
    out.ip_ttl = 1;
    return common::Status::Ok();
  };
  MakeApi(options);
  ASSERT_EQ(Put("i-1", InstanceJson("i-1", "tenant", "10.1.2.3")).status, 201);

  common::Response r = Do(*api_, {"GET",
                                  "/v1/instances/i-1/render?flavour=ec2&path=%2Fcompute%2Fv1%2F"
                                  "%3Frecursive%3Dtrue&header=Metadata-Flavor%3A%20Google",
                                  "",
                                  {}});
  ASSERT_EQ(r.status, 200) << r.body;
  EXPECT_EQ(r.body, "i-1");
  EXPECT_EQ(r.content_type, "text/plain");
  EXPECT_EQ(HeaderOf(r, "X-Flavour"), "fake");
  EXPECT_EQ(HeaderOf(r, "X-OpenIMDS-Render-Status"), "200");
  EXPECT_FALSE(r.ip_ttl.has_value());
  EXPECT_EQ(seen->instance_id, "i-1");
  EXPECT_EQ(seen->method, "GET");
  EXPECT_EQ(seen->target, "/compute/v1/?recursive=true");
  EXPECT_EQ(seen->path, "/compute/v1/");
  EXPECT_EQ(seen->query, "recursive=true");
  EXPECT_EQ(seen->network, "tenant");
  EXPECT_EQ(seen->peer, "10.1.2.3");
  EXPECT_EQ(seen->metadata_flavor, "Google");
  EXPECT_EQ(seen->host, "169.254.169.254");

  // The flavour's own refusal is what a guest would see: passed through as-is.
  common::Response missing = Do(*api_, {"GET", "/v1/instances/i-1/render?path=/missing", "", {}});
  EXPECT_EQ(missing.status, 404);
  EXPECT_EQ(missing.content_type, "text/html");
  EXPECT_EQ(missing.body, "<h1>404</h1>");
  EXPECT_EQ(HeaderOf(missing, "X-OpenIMDS-Render-Status"), "404");

  // A render that cannot happen at all is an admin error.
  common::Response refused = Do(*api_, {"GET", "/v1/instances/i-1/render?path=/refuse", "", {}});
  EXPECT_EQ(refused.status, 404);
  EXPECT_EQ(ErrorCode(refused), "not_found");
  EXPECT_FALSE(HeaderOf(refused, "X-OpenIMDS-Render-Status"));

  EXPECT_EQ(Do(*api_, {"GET", "/v1/instances/absent/render?path=/x", "", {}}).status, 404);
  EXPECT_EQ(Do(*api_, {"GET", "/v1/instances/i-1/render", "", {}}).status, 400);
  EXPECT_EQ(Do(*api_, {"GET", "/v1/instances/i-1/render?path=relative", "", {}}).status, 400);
  EXPECT_EQ(Do(*api_, {"GET", "/v1/instances/i-1/render?path=/x&header=nocolon", "", {}}).status,
            400);
  EXPECT_EQ(Do(*api_, {"GET", "/v1/instances/i-1/render?path=/x&verb=PUT", "", {}}).status, 400);
}

TEST_F(AdminApiTest, RenderWithoutARendererIs503) {
  ASSERT_EQ(Put("i-1", R"({})").status, 201);
  common::Response r = Do(*api_, {"GET", "/v1/instances/i-1/render?path=/latest/", "", {}});
  EXPECT_EQ(r.status, 503);
  EXPECT_EQ(ErrorCode(r), "unavailable");
}

// Concurrent writers to one id: whatever order the store commits them in, the
// catalog must end on the store's latest revision.
TEST_F(AdminApiTest, ConcurrentWritesPublishInCommitOrder) {
  ASSERT_EQ(Put("hot", R"({})").status, 201);
  constexpr int kThreads = 4;
  constexpr int kWrites = 15;
  std::vector<std::thread> threads;
  std::atomic<int> failures{0};
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&, t] {
      for (int i = 0; i < kWrites; ++i) {
        const std::string name = "w" + std::to_string(t) + "-" + std::to_string(i);
        common::Response r = (i % 2 == 0) ? Put("hot", R"({"name":")" + name + R"("})")
                                          : Patch("hot", R"({"name":")" + name + R"("})");
        if (r.status != 200) ++failures;
      }
    });
  }
  for (auto& th : threads) th.join();
  EXPECT_EQ(failures.load(), 0);
  auto stored = store_->Get("hot");
  ASSERT_TRUE(stored.ok());
  const catalog::Entry* published = catalog_.Current()->FindById("hot");
  ASSERT_NE(published, nullptr);
  EXPECT_EQ(published->revision, stored->revision);
  EXPECT_EQ(*published->instance, stored->instance);
}

}  // namespace
}  // namespace openimds::admin
