// Fuzz target: the admin API's NDJSON import, end to end on a real store.
//
// The input is the body of POST /v1/instances:import, handled by
// admin::AdminApi over a SQLite store in a temporary directory, with the
// feed::Follower and store::WriteQueue that `openimds serve` runs. Two
// instances are always there before an input runs (base-1 in "default" at
// 10.0.0.1, base-2 in "blue" at 10.0.0.2), so imports can collide with
// stored ones; whatever an import adds is deleted afterwards.
//
// Invariants (each a FUZZ_CHECK):
//   - the answer is 200 with {"imported": N, "revision_first": A,
//     "revision_last": B}, N the number of non-blank lines and A <= B <= the
//     store's revision; or a
//     400/409/413 JSON error {"error": {"code", "message"}} with a message;
//     never a 5xx, never a deferral that does not finish;
//   - all or nothing: a refused import leaves the store's revision as it
//     was; a refusal that names "line N" names a line that is there and not
//     blank, and every line before it parses on its own (the first offender
//     is reported);
//   - read your writes: after a 200, GET of every imported id answers the
//     record of its line.

#include <stdlib.h>

#include <boost/json/parse.hpp>
#include <boost/json/serialize.hpp>
#include <boost/json/value.hpp>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <filesystem>
#include <memory>
#include <mutex>
#include <optional>
#include <set>
#include <string>
#include <string_view>
#include <vector>

#include "admin/admin_api.h"
#include "catalog/catalog.h"
#include "common/http_message.h"
#include "common/log.h"
#include "common/metrics.h"
#include "feed/follower.h"
#include "fuzz/fuzz_check.h"
#include "model/instance_json.h"
#include "store/sqlite_store.h"
#include "store/write_queue.h"

namespace openimds::fuzz {
namespace {

namespace json = boost::json;

constexpr std::string_view kBase[] = {
    R"({"id":"base-1","network":"default","nics":[{"mac":"02:00:00:00:01:01","private_ipv4s":["10.0.0.1"]}]})",
    R"({"id":"base-2","network":"blue","nics":[{"mac":"02:00:00:00:02:02","private_ipv4s":["10.0.0.2"]}]})",
};

std::string g_dir;  // removed at exit

struct World {
  common::MetricsRegistry metrics;
  std::unique_ptr<store::SqliteStore> store;
  catalog::Catalog catalog;
  std::unique_ptr<feed::Follower> follower;
  std::unique_ptr<store::WriteQueue> writes;
  std::unique_ptr<admin::AdminApi> api;

  World() {
    common::SetLogLevel(common::LogLevel::kError);
    const char* tmp = getenv("TMPDIR");
    std::string pattern = std::string(tmp != nullptr && *tmp != '\0' ? tmp : "/tmp") +
                          "/openimds-fuzz-import-XXXXXX";
    FUZZ_CHECK(mkdtemp(pattern.data()) != nullptr, "mkdtemp " + pattern);
    g_dir = pattern;
    atexit([] { std::filesystem::remove_all(g_dir); });

    store::SqliteStore::Options so;
    so.path = g_dir + "/store.db";
    // A throwaway store: durability across power loss buys nothing here.
    so.synchronous = store::SqliteStore::Options::Synchronous::kNormal;
    auto opened = store::SqliteStore::Open(so);
    FUZZ_CHECK(opened.ok(), opened.status().ToString());
    store = std::move(*opened);
    feed::Follower::Options fo;
    fo.background = false;
    follower = std::make_unique<feed::Follower>(fo, *store, catalog, metrics);
    FUZZ_CHECK(follower->Load().ok(), "follower load");
    follower->Start();
    store::WriteQueue::Options wo;
    wo.background = false;
    writes = std::make_unique<store::WriteQueue>(*store, wo);
    api = std::make_unique<admin::AdminApi>(admin::AdminApi::Options{}, *store, catalog, *writes,
                                            *follower, metrics);
  }
};

World& TheWorld() {
  static World* world = new World();  // never destroyed: libFuzzer exits without unwinding
  return *world;
}

// One admin call, waiting out a deferred write as the http core does.
common::Response Call(World& w, std::string_view method, std::string_view target,
                      std::string_view body) {
  common::Request request;
  request.method = method;
  request.target = target;
  request.path = target;
  request.body = body;
  common::Response out;
  w.api->Handle(request, out);
  if (out.deferred) {
    std::shared_ptr<common::Deferred> pending = std::move(out.deferred);
    std::mutex mu;
    std::condition_variable cv;
    bool ready = false;
    pending->OnReady([&] {
      std::lock_guard<std::mutex> lock(mu);
      ready = true;
      cv.notify_all();
    });
    {
      std::unique_lock<std::mutex> lock(mu);
      // Generous: a write on a local store takes milliseconds.
      FUZZ_CHECK(cv.wait_for(lock, std::chrono::seconds(60), [&] { return ready; }),
                 "a deferred admin write never finished");
    }
    out.Clear();
    request.resumed = true;
    request.resumed_from = pending;
    w.api->Handle(request, out);
    FUZZ_CHECK(!out.deferred, "deferred twice");
  }
  return out;
}

int64_t Revision(World& w) {
  auto r = w.store->LatestRevision();
  FUZZ_CHECK(r.ok(), r.status().ToString());
  return *r;
}

// Puts the two base instances back as they were (an import may have replaced them).
void RestoreBase(World& w) {
  for (std::string_view text : kBase) {
    auto want = model::FromJsonText(text);
    const catalog::Entry* have = w.catalog.Current()->FindById(want->id);
    if (have != nullptr && *have->instance == *want) continue;
    common::Response r = Call(w, "PUT", "/v1/instances/" + want->id, text);
    FUZZ_CHECK(r.status == 200 || r.status == 201,
               "restoring " + want->id + ": " + std::to_string(r.status) + " " + r.body);
  }
}

bool IsBlank(std::string_view line) {
  for (char c : line) {
    if (c != ' ' && c != '\t' && c != '\r') return false;
  }
  return true;
}

std::vector<std::string_view> Lines(std::string_view body) {
  std::vector<std::string_view> lines;
  while (!body.empty()) lines.push_back(NextLine(body));
  return lines;
}

std::optional<json::value> ParseBody(const std::string& body) {
  boost::system::error_code ec;
  json::value v = json::parse(body, ec);
  if (ec) return std::nullopt;
  return v;
}

}  // namespace
}  // namespace openimds::fuzz

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace openimds;
  using namespace openimds::fuzz;
  World& w = TheWorld();
  const std::string_view body(reinterpret_cast<const char*>(data), size);
  RestoreBase(w);
  const int64_t before = Revision(w);

  const common::Response r = Call(w, "POST", "/v1/instances:import", body);
  const std::string where = "import answered " + std::to_string(r.status) + ": " + r.body;
  const auto answer = ParseBody(r.body);
  FUZZ_CHECK(answer && answer->is_object(), where);
  const std::vector<std::string_view> lines = Lines(body);

  if (r.status != 200) {
    FUZZ_CHECK(r.status == 400 || r.status == 409 || r.status == 413, where);
    const json::object* error = answer->as_object().if_contains("error")
                                    ? answer->as_object().at("error").if_object()
                                    : nullptr;
    FUZZ_CHECK(error != nullptr && error->contains("code") && error->contains("message") &&
                   error->at("message").is_string() && !error->at("message").as_string().empty(),
               where);
    FUZZ_CHECK(Revision(w) == before, "a refused import wrote: " + where);
    const std::string_view message = error->at("message").as_string();
    if (message.substr(0, 5) == "line ") {
      const size_t n = std::stoul(std::string(message.substr(5, message.find(':') - 5)));
      FUZZ_CHECK(n >= 1 && n <= lines.size() && !IsBlank(lines[n - 1]),
                 "the refusal names a line that is not there: " + where);
      for (size_t i = 0; i + 1 < n; ++i) {
        if (IsBlank(lines[i])) continue;
        FUZZ_CHECK(model::FromJsonText(lines[i]).ok(),
                   "line " + std::to_string(i + 1) + " is invalid but line " + std::to_string(n) +
                       " was reported: " + where);
      }
    }
    return 0;
  }

  // Accepted: every non-blank line is now stored and visible.
  size_t non_blank = 0;
  std::set<std::string> imported;
  for (std::string_view line : lines) {
    if (IsBlank(line)) continue;
    ++non_blank;
    auto want = model::FromJsonText(line);
    FUZZ_CHECK(want.ok(), "an import with an invalid line was accepted: " + Printable(line));
    imported.insert(want->id);
    const catalog::Entry* have = w.catalog.Current()->FindById(want->id);
    FUZZ_CHECK(have != nullptr, "imported " + want->id + " is not visible");
    // Event times given as {"in_seconds": N} are relative to the moment of
    // parsing, which differs between the import and this check.
    if (line.find("in_seconds") == std::string_view::npos) {
      FUZZ_CHECK(*have->instance == *want, "imported " + want->id + " differs from its line");
    }
  }
  const json::object& o = answer->as_object();
  FUZZ_CHECK(o.contains("imported") && o.at("imported").is_number() &&
                 o.at("imported").to_number<int64_t>() == static_cast<int64_t>(non_blank),
             where + " for " + std::to_string(non_blank) + " lines");
  // A line equal to the stored record writes nothing and keeps its revision.
  FUZZ_CHECK(o.at("revision_first").to_number<int64_t>() >= 1 &&
                 o.at("revision_first").to_number<int64_t>() <=
                     o.at("revision_last").to_number<int64_t>() &&
                 o.at("revision_last").to_number<int64_t>() <= Revision(w),
             where);

  // Back to the base state for the next input.
  for (const std::string& id : imported) {
    if (id == "base-1" || id == "base-2") continue;
    common::Response d = Call(w, "DELETE", "/v1/instances/" + id, "");
    FUZZ_CHECK(d.status == 204, "deleting " + id + ": " + std::to_string(d.status) + d.body);
  }
  return 0;
}
