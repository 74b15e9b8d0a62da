// The delta catalog against a reference: random sequences of puts, moves of
// addresses between instances, network changes, shared MACs (EUI-64
// collisions) and deletes (also of absent ids), grouped into pages the way
// the store's change feed folds them, must leave the catalog answering
// exactly as a snapshot rebuilt from scratch by the documented rules would.
#include <gtest/gtest.h>

#include <algorithm>
#include <map>
#include <memory>
#include <optional>
#include <random>
#include <set>
#include <string>
#include <vector>

#include "catalog/catalog.h"
#include "catalog/eui64.h"
#include "common/ip_address.h"
#include "model/instance.h"
#include "model/instance_json.h"

namespace openimds::catalog {
namespace {

using State = std::map<std::string, model::Instance>;  // id -> record, as the store holds it

const std::vector<std::string> kNetworks = {"blue", "green"};

std::vector<std::string> AddressPool() {
  std::vector<std::string> out;
  for (int i = 1; i <= 16; ++i) out.push_back("10.0.0." + std::to_string(i));
  for (int i = 1; i <= 4; ++i) out.push_back("fd00::" + std::to_string(i));
  return out;
}

std::vector<std::string> MacPool() {
  std::vector<std::string> out;
  for (int i = 1; i <= 6; ++i) out.push_back("52:54:00:00:00:0" + std::to_string(i));
  return out;
}

// Who answers from (network, address) by the rules of catalog.h, computed
// from scratch: claimed addresses first, then EUI-64 addresses that exactly
// one instance derives.
std::optional<std::string> Expected(const State& state, const std::string& network,
                                    const common::IpAddress& address) {
  for (const auto& [id, in] : state) {
    if (in.network != network) continue;
    for (const auto& text : model::CallerAddresses(in)) {
      if (*common::IpAddress::Parse(text) == address) return id;
    }
  }
  std::set<std::string> derivers;
  for (const auto& [id, in] : state) {
    if (in.network != network) continue;
    for (const auto& nic : in.nics) {
      auto ll = Eui64LinkLocal(nic.mac);
      if (ll && *ll == address) derivers.insert(id);
    }
  }
  if (derivers.size() == 1) return *derivers.begin();
  return std::nullopt;
}

// Every address anyone could answer from, plus some nobody does.
std::vector<common::IpAddress> Universe() {
  std::vector<common::IpAddress> out;
  for (const auto& a : AddressPool()) out.push_back(*common::IpAddress::Parse(a));
  for (const auto& m : MacPool()) out.push_back(*Eui64LinkLocal(m));
  out.push_back(*common::IpAddress::Parse("10.9.9.9"));
  return out;
}

void ExpectSame(const Snapshot& snap, const State& state, const std::string& where) {
  ASSERT_EQ(snap.size(), state.size()) << where;
  for (const auto& [id, in] : state) {
    const Entry* e = snap.FindById(id);
    ASSERT_NE(e, nullptr) << where << ": " << id;
    EXPECT_EQ(*e->instance, in) << where << ": " << id;
  }
  size_t seen = 0;
  snap.ForEach([&](const Entry& e) {
    ++seen;
    EXPECT_EQ(state.count(e.instance->id), 1u) << where << ": stray " << e.instance->id;
  });
  EXPECT_EQ(seen, state.size()) << where;
  for (const auto& network : kNetworks) {
    for (const auto& address : Universe()) {
      const model::Instance* got = snap.FindByAddress(network, address);
      const auto want = Expected(state, network, address);
      EXPECT_EQ(got == nullptr ? std::string("-") : got->id.str(), want.value_or("-"))
          << where << ": " << network << " " << address.ToString();
    }
  }
}

// One committed write: the id and its state after it (nullopt: deleted).
struct Op {
  std::string id;
  std::optional<model::Instance> after;
};

class Generator {
 public:
  explicit Generator(uint32_t seed) : rng_(seed) {}

  // Appends one or two store-valid writes to `ops`, applying them to `state`.
  void Next(State& state, std::vector<Op>& ops) {
    const std::string id = "i-" + std::to_string(Pick(24));
    if (Pick(5) == 0) {  // delete, possibly of an absent id (the store writes nothing then)
      if (state.erase(id) == 1) ops.push_back({id, std::nullopt});
      return;
    }
    model::Instance in;
    in.id = id;
    in.network = kNetworks[Pick(kNetworks.size())];
    const size_t nics = 1 + Pick(2);
    const auto addresses = AddressPool();
    const auto macs = MacPool();
    for (size_t n = 0; n < nics; ++n) {
      model::Nic nic;
      nic.mac = macs[Pick(macs.size())];  // shared MACs: EUI-64 collisions
      nic.device_number = static_cast<int>(n);
      for (size_t k = Pick(3); k > 0; --k) {
        const std::string& a = addresses[Pick(addresses.size())];
        auto& list = a.find(':') == std::string::npos ? nic.private_ipv4s : nic.ipv6s;
        if (std::find(list.begin(), list.end(), a) == list.end()) list.push_back(a);
      }
      in.nics.push_back(std::move(nic));
    }
    // Addresses held by someone else: that instance gives them up first (a
    // write of its own), as the store's unique index demands.
    for (const auto& a : model::CallerAddresses(in)) {
      for (auto& [other_id, other] : state) {
        if (other_id == id || other.network != in.network) continue;
        bool dropped = false;
        for (auto& nic : other.nics) {
          for (auto* list : {&nic.private_ipv4s, &nic.ipv6s}) {
            auto it = std::find(list->begin(), list->end(), a);
            if (it != list->end()) {
              list->erase(it);
              dropped = true;
            }
          }
        }
        if (dropped) ops.push_back({other_id, other});
      }
    }
    state[id] = in;
    ops.push_back({id, in});
  }

 private:
  size_t Pick(size_t n) { return static_cast<size_t>(rng_() % n); }
  std::mt19937 rng_;
};

// A page as the store's ChangesSince gives it: one entry per id, its state
// read at `read` (which may be later than the page's last write), ordered by
// the id's last revision in the page.
std::vector<Change> Fold(const std::vector<Op>& ops, size_t begin, size_t end, const State& read,
                         int64_t first_revision) {
  std::map<std::string, int64_t> last;
  for (size_t i = begin; i < end; ++i) last[ops[i].id] = first_revision + static_cast<int64_t>(i);
  std::vector<std::pair<int64_t, std::string>> order;
  for (const auto& [id, rev] : last) order.emplace_back(rev, id);
  std::sort(order.begin(), order.end());
  std::vector<Change> out;
  for (const auto& [rev, id] : order) {
    auto it = read.find(id);
    Change c;
    c.id = id;
    c.revision = rev;
    if (it != read.end()) c.instance = std::make_shared<const model::Instance>(it->second);
    out.push_back(std::move(c));
  }
  return out;
}

void RunRandomPages(uint32_t seed) {
  Generator gen(seed);
  std::mt19937 rng(seed * 7919u);
  State state;
  std::vector<Op> ops;
  std::vector<State> after;  // after[i]: the state once ops[i] committed
  for (int i = 0; i < 600; ++i) gen.Next(state, ops);
  State replay;
  for (const Op& op : ops) {
    if (op.after) {
      replay[op.id] = *op.after;
    } else {
      replay.erase(op.id);
    }
    after.push_back(replay);
  }
  // Replay `after` as the history: a write's state is what it left.
  Catalog catalog;
  Catalog::Reader reader(catalog);
  std::vector<std::pair<std::shared_ptr<const Snapshot>, State>> kept;
  size_t begin = 0;
  size_t horizon = 0;  // the latest point any page was read at
  while (begin < ops.size()) {
    const size_t end = std::min(ops.size(), begin + 1 + static_cast<size_t>(rng() % 12));
    // Usually read at the page's end; sometimes later (the store's read
    // happened after more writes committed), which only the next page settles.
    const bool late = rng() % 3 == 0 && end + 1 < ops.size();
    const size_t read_at = late ? std::min(ops.size(), end + 1 + rng() % 6) - 1 : end - 1;
    catalog.Apply(Fold(ops, begin, end, after[read_at], 1), static_cast<int64_t>(end));
    const std::string where = "seed " + std::to_string(seed) + ", after op " + std::to_string(end);
    horizon = std::max(horizon, read_at);
    // Settled once no page so far was read past this one's end.
    if (horizon <= end - 1) {
      ExpectSame(reader.Get(), after[end - 1], where);
      if (::testing::Test::HasFailure()) return;
      if (rng() % 10 == 0) kept.emplace_back(catalog.Current(), after[end - 1]);
    }
    begin = end;
  }
  // Published snapshots never change, whatever came after them.
  for (size_t k = 0; k < kept.size(); ++k) {
    ExpectSame(*kept[k].first, kept[k].second, "kept snapshot " + std::to_string(k));
  }
}

TEST(CatalogPropertyTest, RandomPagesMatchAFullRebuild) {
  for (uint32_t seed = 1; seed <= 40; ++seed) {
    RunRandomPages(seed);
    if (HasFailure()) break;
  }
}

TEST(CatalogPropertyTest, ReplaceAllThenDeltasMatch) {
  Generator gen(99);
  State state;
  std::vector<Op> ops;
  for (int i = 0; i < 200; ++i) gen.Next(state, ops);
  std::vector<Entry> entries;
  for (const auto& [id, in] : state) {
    entries.push_back(Entry{std::make_shared<const model::Instance>(in), 1});
  }
  Catalog catalog;
  catalog.ReplaceAll(std::move(entries), 200);
  ExpectSame(*catalog.Current(), state, "after ReplaceAll");
  EXPECT_EQ(catalog.Current()->revision(), 200);
  ops.clear();
  for (int i = 0; i < 50; ++i) gen.Next(state, ops);
  std::vector<Change> changes;
  for (const auto& op : ops) {
    Change c{op.id, nullptr, 0};
    if (op.after) c.instance = std::make_shared<const model::Instance>(*op.after);
    changes.push_back(std::move(c));
  }
  catalog.Apply(std::move(changes), 260);
  ExpectSame(*catalog.Current(), state, "after deltas");
  EXPECT_EQ(catalog.Current()->revision(), 260);
}

TEST(CatalogTest, ReadersNeverFreeASnapshotWritersDo) {
  Catalog catalog;
  model::Instance in;
  in.id = "a";
  in.network = "blue";
  catalog.Upsert(Entry{std::make_shared<const model::Instance>(in), 1});
  std::weak_ptr<const Snapshot> old = catalog.Current();
  std::weak_ptr<const model::Instance> old_instance = catalog.Current()->FindById("a")->instance;
  {
    Catalog::Reader reader(catalog);
    reader.Get();  // a guest thread holds the current snapshot
    in.name = "changed";
    catalog.Upsert(Entry{std::make_shared<const model::Instance>(in), 2});
    // Published while the reader held the old one: kept for it.
    EXPECT_FALSE(old.expired());
    EXPECT_EQ(reader.Get().FindById("a")->instance->name, "changed");
    // The reader moved on, but dropping its reference freed nothing.
    EXPECT_FALSE(old.expired());
    EXPECT_FALSE(old_instance.expired());
  }
  EXPECT_EQ(catalog.Reclaim(), 0u);
  EXPECT_TRUE(old.expired());
  EXPECT_TRUE(old_instance.expired());
}

TEST(CatalogTest, DeletingAnAbsentIdChangesNothingButTheGeneration) {
  Catalog catalog;
  const uint64_t before = catalog.generation();
  catalog.Remove("nobody");
  EXPECT_EQ(catalog.Current()->size(), 0u);
  EXPECT_GT(catalog.generation(), before);
}

}  // namespace
}  // namespace openimds::catalog
