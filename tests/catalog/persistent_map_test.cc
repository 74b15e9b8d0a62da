#include "catalog/persistent_map.h"

#include <gtest/gtest.h>

#include <cstdint>
#include <map>
#include <random>
#include <string>
#include <vector>

namespace openimds::catalog {
namespace {

// Hashes that agree in every bit for keys with equal `key % buckets`, so the
// trie has to go down to its collision nodes.
struct CoarseHash {
  size_t operator()(int key) const { return static_cast<size_t>(key % 7); }
};
// The identity: neighbouring keys share most of their bits.
struct IdentityHash {
  size_t operator()(int key) const { return static_cast<size_t>(key); }
};

template <typename Map>
std::map<int, int> Contents(const Map& map) {
  std::map<int, int> out;
  map.ForEach([&out](int k, int v) { EXPECT_TRUE(out.emplace(k, v).second) << "key twice: " << k; });
  return out;
}

template <typename Hash>
void RandomOpsMatchStdMap(uint32_t seed, int key_range) {
  using Map = PersistentMap<int, int, Hash>;
  std::mt19937 rng(seed);
  Map map;
  std::map<int, int> reference;
  // Earlier versions with what they held then: they must never change.
  std::vector<std::pair<Map, std::map<int, int>>> versions;
  for (int batch = 0; batch < 200; ++batch) {
    Map next = map;
    {
      typename Map::Editor editor(next);
      const int ops = 1 + static_cast<int>(rng() % 40);
      for (int i = 0; i < ops; ++i) {
        const int key = static_cast<int>(rng() % static_cast<uint32_t>(key_range));
        if (rng() % 3 == 0) {
          EXPECT_EQ(editor.Erase(key), reference.erase(key) == 1);
        } else {
          const int value = static_cast<int>(rng());
          EXPECT_EQ(editor.Set(key, value), reference.count(key) == 0);
          reference[key] = value;
        }
      }
    }
    map = next;
    ASSERT_EQ(map.size(), reference.size());
    for (int key = -1; key <= key_range; ++key) {
      const int* found = map.Find(key);
      auto it = reference.find(key);
      if (it == reference.end()) {
        EXPECT_EQ(found, nullptr) << "key " << key;
      } else {
        ASSERT_NE(found, nullptr) << "key " << key;
        EXPECT_EQ(*found, it->second);
      }
    }
    ASSERT_EQ(Contents(map), reference);
    if (batch % 20 == 0) versions.emplace_back(map, reference);
  }
  for (const auto& [old, held] : versions) {
    EXPECT_EQ(old.size(), held.size());
    EXPECT_EQ(Contents(old), held);
  }
}

TEST(PersistentMapTest, RandomOpsMatchAReferenceMap) { RandomOpsMatchStdMap<std::hash<int>>(1, 5000); }

TEST(PersistentMapTest, CollidingHashesGoToCollisionNodesAndBack) {
  RandomOpsMatchStdMap<CoarseHash>(2, 200);
}

TEST(PersistentMapTest, SequentialKeysWithAWeakHash) { RandomOpsMatchStdMap<IdentityHash>(3, 3000); }

TEST(PersistentMapTest, ACopyIsUnaffectedByEditsOfTheOriginal) {
  using Map = PersistentMap<int, int, std::hash<int>>;
  Map a;
  {
    Map::Editor e(a);
    for (int i = 0; i < 1000; ++i) e.Set(i, i);
  }
  Map b = a;
  {
    Map::Editor e(a);
    for (int i = 0; i < 1000; i += 2) e.Erase(i);
    e.Set(5, -5);
  }
  EXPECT_EQ(a.size(), 500u);
  EXPECT_EQ(b.size(), 1000u);
  ASSERT_NE(b.Find(5), nullptr);
  EXPECT_EQ(*b.Find(5), 5);
  EXPECT_EQ(*a.Find(5), -5);
  ASSERT_NE(b.Find(4), nullptr);
  EXPECT_EQ(a.Find(4), nullptr);
}

TEST(PersistentMapTest, EmptyMapAndErasingEverything) {
  using Map = PersistentMap<int, int, std::hash<int>>;
  Map m;
  EXPECT_EQ(m.Find(1), nullptr);
  {
    Map::Editor e(m);
    EXPECT_FALSE(e.Erase(1));
    for (int i = 0; i < 100; ++i) e.Set(i, i);
    for (int i = 0; i < 100; ++i) EXPECT_TRUE(e.Erase(i));
  }
  EXPECT_TRUE(m.empty());
  EXPECT_EQ(m.Find(3), nullptr);
  EXPECT_TRUE(Contents(m).empty());
}

// Values that count their own live copies, so an entry moved, copied or
// destroyed once too often or too rarely shows up as a count that is off.
struct Counted {
  static int live;
  explicit Counted(int v) : value(v) { ++live; }
  Counted(const Counted& o) : value(o.value) { ++live; }
  Counted(Counted&& o) noexcept : value(o.value) { ++live; }
  Counted& operator=(const Counted&) = default;
  Counted& operator=(Counted&&) noexcept = default;
  ~Counted() { --live; }
  int value;
};
int Counted::live = 0;

// Collides often: strings that end in the same digit hash alike.
struct LastCharHash {
  size_t operator()(const std::string& key) const {
    return key.empty() ? 0 : static_cast<size_t>(key.back());
  }
};

template <typename Hash>
void NonTrivialEntriesLiveExactlyAsLongAsAMapHoldsThem(uint32_t seed) {
  using Map = PersistentMap<std::string, Counted, Hash>;
  {
    std::mt19937 rng(seed);
    Map map;
    std::map<std::string, int> reference;
    std::vector<std::pair<Map, std::map<std::string, int>>> versions;
    for (int batch = 0; batch < 150; ++batch) {
      Map next = map;
      {
        typename Map::Editor editor(next);
        const int ops = 1 + static_cast<int>(rng() % 60);
        for (int i = 0; i < ops; ++i) {
          // Long keys, so a key moved by memcpy instead of its move
          // constructor would leave a dangling heap pointer behind.
          const std::string key = std::string(24, 'k') + std::to_string(rng() % 700);
          if (rng() % 3 == 0) {
            EXPECT_EQ(editor.Erase(key), reference.erase(key) == 1);
          } else {
            const int value = static_cast<int>(rng());
            EXPECT_EQ(editor.Set(key, Counted(value)), reference.count(key) == 0);
            reference[key] = value;
          }
        }
      }
      map = next;
      ASSERT_EQ(map.size(), reference.size());
      std::map<std::string, int> seen;
      map.ForEach([&seen](const std::string& k, const Counted& v) { seen.emplace(k, v.value); });
      ASSERT_EQ(seen, reference);
      for (const auto& [k, v] : reference) {
        const Counted* found = map.Find(k);
        ASSERT_NE(found, nullptr) << k;
        EXPECT_EQ(found->value, v);
      }
      if (batch % 15 == 0) versions.emplace_back(map, reference);
    }
    for (const auto& [old, held] : versions) {
      std::map<std::string, int> seen;
      old.ForEach([&seen](const std::string& k, const Counted& v) { seen.emplace(k, v.value); });
      EXPECT_EQ(seen, held);
    }
    EXPECT_GT(Counted::live, 0);
  }
  EXPECT_EQ(Counted::live, 0) << "entries leaked or destroyed twice";
}

TEST(PersistentMapTest, NonTrivialEntriesLiveExactlyAsLongAsAMapHoldsThem) {
  NonTrivialEntriesLiveExactlyAsLongAsAMapHoldsThem<std::hash<std::string>>(7);
  NonTrivialEntriesLiveExactlyAsLongAsAMapHoldsThem<LastCharHash>(8);
}

}  // namespace
}  // namespace openimds::catalog
