#pragma once

#include <atomic>
#include <bit>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <utility>
#include <vector>

namespace openimds::catalog {

// A persistent (immutable, structurally shared) hash map: a hash array mapped
// trie in the CHAMP layout (Steindorfer & Vinju, OOPSLA 2015). Each node has
// 32 slots selected by 5 bits of the key's hash; a slot holds either an entry
// or a child node, kept in two dense arrays indexed by two bitmaps. Keys whose
// 64-bit hashes are equal end in a collision node (a plain list).
//
// Why this shape: a change copies only the nodes on one root-to-leaf path
// (depth log32 N: 4 at a million keys), so publishing one changed instance
// costs O(log N) whatever the fleet size, and every snapshot that was ever
// published stays valid and unchanged for the readers that hold it.
//
// Changes go through an Editor: nodes that an Editor made are its own until
// the Editor is dropped, so a batch of changes (an import, a page of the
// change feed, building the first snapshot) mutates them in place instead of
// copying the path again for every key. Nodes that a published map shares are
// never written: an Editor only writes nodes stamped with its own id, and ids
// are never reused.
//
// Thread-safety: a map that is no longer being edited may be read (Find,
// ForEach, copies) from any number of threads without locks. An Editor and
// the map it edits belong to one thread until the edit ends.
//
// Node lifetime is reference counted (intrusive, atomic); the thread that
// drops the last reference to a node frees it (catalog::Catalog makes sure
// that is never a guest I/O thread).
template <typename K, typename V, typename Hash, typename Eq = std::equal_to<K>>
class PersistentMap {
  struct Node;

 public:
  PersistentMap() = default;
  PersistentMap(const PersistentMap& other) : root_(other.root_), size_(other.size_) { Ref(root_); }
  PersistentMap(PersistentMap&& other) noexcept
      : root_(std::exchange(other.root_, nullptr)), size_(std::exchange(other.size_, 0)) {}
  PersistentMap& operator=(PersistentMap other) noexcept {
    std::swap(root_, other.root_);
    std::swap(size_, other.size_);
    return *this;
  }
  ~PersistentMap() { Unref(root_); }

  size_t size() const { return size_; }
  bool empty() const { return size_ == 0; }

  // The value stored under `key`, or nullptr. No allocation, no lock.
  const V* Find(const K& key) const {
    const uint64_t h = Mix(Hash()(key));
    const Node* node = root_;
    for (unsigned shift = 0; node != nullptr; shift += kBits) {
      if (node->collision()) {
        for (const auto& e : node->data) {
          if (Eq()(e.first, key)) return &e.second;
        }
        return nullptr;
      }
      const uint32_t bit = BitFor(h, shift);
      if ((node->datamap & bit) != 0) {
        const auto& e = node->data[Index(node->datamap, bit)];
        return Eq()(e.first, key) ? &e.second : nullptr;
      }
      if ((node->nodemap & bit) == 0) return nullptr;
      node = node->nodes[Index(node->nodemap, bit)];
    }
    return nullptr;
  }

  // Calls f(key, value) for every entry, in an order that depends only on the
  // keys' hashes.
  template <typename F>
  void ForEach(F&& f) const {
    if (root_ != nullptr) Visit(root_, f);
  }

  // Changes one map in place, sharing (never writing) the nodes of the map it
  // was copied from. Set/Erase cost O(log N) node copies the first time a
  // path is touched and none after that within the same Editor.
  class Editor {
   public:
    explicit Editor(PersistentMap& map) : map_(map), id_(NextEditId()) {}
    Editor(const Editor&) = delete;
    Editor& operator=(const Editor&) = delete;

    // Inserts or replaces the entry for `key`: both key and value are
    // replaced (a key may view memory that the value owns). True if added.
    bool Set(K key, V value) {
      const uint64_t h = Mix(Hash()(key));
      bool added = false;
      map_.root_ = SetIn(map_.root_, 0, h, std::move(key), std::move(value), added);
      if (added) ++map_.size_;
      return added;
    }

    // Removes the entry for `key`; true if there was one.
    bool Erase(const K& key) {
      const uint64_t h = Mix(Hash()(key));
      bool removed = false;
      if (map_.root_ == nullptr) return false;
      map_.root_ = EraseIn(map_.root_, 0, h, key, removed);
      if (removed) --map_.size_;
      return removed;
    }

   private:
    // A node this Editor may write: `node` itself if the Editor made it,
    // else a fresh copy (and the caller's reference to `node` is dropped).
    Node* Own(Node* node) {
      if (node->edit == id_) return node;
      Node* copy = new Node(*node, id_);
      Unref(node);
      return copy;
    }

    Node* NewNode() { return new Node(id_); }

    // Takes ownership of the reference `node` (may be null) and returns the
    // node that replaces it (the same one if it was changed in place).
    Node* SetIn(Node* node, unsigned shift, uint64_t h, K&& key, V&& value, bool& added) {
      if (node == nullptr) {
        Node* fresh = NewNode();
        fresh->datamap = BitFor(h, shift);
        ReserveOneMore(fresh->data);
        fresh->data.emplace_back(std::move(key), std::move(value));
        added = true;
        return fresh;
      }
      if (node->collision()) {
        node = Own(node);
        for (auto& e : node->data) {
          if (Eq()(e.first, key)) {
            e = {std::move(key), std::move(value)};
            return node;
          }
        }
        ReserveOneMore(node->data);
        node->data.emplace_back(std::move(key), std::move(value));
        added = true;
        return node;
      }
      const uint32_t bit = BitFor(h, shift);
      if ((node->datamap & bit) != 0) {
        const size_t i = Index(node->datamap, bit);
        node = Own(node);
        if (Eq()(node->data[i].first, key)) {
          node->data[i] = {std::move(key), std::move(value)};
          return node;
        }
        // Two keys share this slot: push both one level down.
        std::pair<K, V> existing = std::move(node->data[i]);
        const uint64_t existing_hash = Mix(Hash()(existing.first));
        node->data.erase(node->data.begin() + static_cast<ptrdiff_t>(i));
        node->datamap &= ~bit;
        Node* child = Merge(shift + kBits, std::move(existing), existing_hash,
                            {std::move(key), std::move(value)}, h);
        ReserveOneMore(node->nodes);
        node->nodes.insert(node->nodes.begin() + static_cast<ptrdiff_t>(Index(node->nodemap, bit)),
                           child);
        node->nodemap |= bit;
        added = true;
        return node;
      }
      if ((node->nodemap & bit) != 0) {
        const size_t i = Index(node->nodemap, bit);
        node = Own(node);
        node->nodes[i] = SetIn(node->nodes[i], shift + kBits, h, std::move(key), std::move(value),
                               added);
        return node;
      }
      node = Own(node);
      ReserveOneMore(node->data);
      node->data.insert(node->data.begin() + static_cast<ptrdiff_t>(Index(node->datamap, bit)),
                        {std::move(key), std::move(value)});
      node->datamap |= bit;
      added = true;
      return node;
    }

    // A node at `shift` holding two entries whose hashes agree below `shift`.
    Node* Merge(unsigned shift, std::pair<K, V>&& a, uint64_t ha, std::pair<K, V>&& b,
                uint64_t hb) {
      Node* node = NewNode();
      if (shift >= kMaxShift) {
        node->collision_node = true;
        ReserveOneMore(node->data);
        node->data.push_back(std::move(a));
        ReserveOneMore(node->data);
        node->data.push_back(std::move(b));
        return node;  // collision node: datamap == nodemap == 0
      }
      const uint32_t bit_a = BitFor(ha, shift);
      const uint32_t bit_b = BitFor(hb, shift);
      if (bit_a == bit_b) {
        node->nodemap = bit_a;
        ReserveOneMore(node->nodes);
        node->nodes.push_back(Merge(shift + kBits, std::move(a), ha, std::move(b), hb));
        return node;
      }
      node->datamap = bit_a | bit_b;
      if (bit_a < bit_b) {
        ReserveOneMore(node->data);
        node->data.push_back(std::move(a));
        ReserveOneMore(node->data);
        node->data.push_back(std::move(b));
      } else {
        ReserveOneMore(node->data);
        node->data.push_back(std::move(b));
        ReserveOneMore(node->data);
        node->data.push_back(std::move(a));
      }
      return node;
    }

    // Takes ownership of `node` (non-null); returns its replacement, nullptr
    // once it holds nothing.
    Node* EraseIn(Node* node, unsigned shift, uint64_t h, const K& key, bool& removed) {
      if (node->collision()) {
        for (size_t i = 0; i < node->data.size(); ++i) {
          if (!Eq()(node->data[i].first, key)) continue;
          node = Own(node);
          node->data.erase(node->data.begin() + static_cast<ptrdiff_t>(i));
          removed = true;
          break;
        }
        return Collapse(node);
      }
      const uint32_t bit = BitFor(h, shift);
      if ((node->datamap & bit) != 0) {
        const size_t i = Index(node->datamap, bit);
        if (!Eq()(node->data[i].first, key)) return node;
        node = Own(node);
        node->data.erase(node->data.begin() + static_cast<ptrdiff_t>(i));
        node->datamap &= ~bit;
        removed = true;
        return Collapse(node);
      }
      if ((node->nodemap & bit) == 0) return node;
      const size_t i = Index(node->nodemap, bit);
      Node* child = node->nodes[i];
      Ref(child);  // keep it alive while we look inside; the node still holds its own
      Node* replaced = EraseIn(child, shift + kBits, h, key, removed);
      if (!removed) {
        Unref(replaced);  // == child, our extra reference
        return node;
      }
      node = Own(node);
      Unref(node->nodes[i]);
      if (replaced == nullptr) {
        node->nodes.erase(node->nodes.begin() + static_cast<ptrdiff_t>(i));
        node->nodemap &= ~bit;
      } else if (replaced->nodes.empty() && replaced->data.size() == 1) {
        // A child left with one entry moves up into this node's entries, so
        // the trie stays as shallow as its keys need.
        node->nodes.erase(node->nodes.begin() + static_cast<ptrdiff_t>(i));
        node->nodemap &= ~bit;
        std::pair<K, V> only = replaced->edit == id_ ? std::move(replaced->data[0])
                                                     : replaced->data[0];
        Unref(replaced);
        ReserveOneMore(node->data);
        node->data.insert(node->data.begin() + static_cast<ptrdiff_t>(Index(node->datamap, bit)),
                          std::move(only));
        node->datamap |= bit;
      } else {
        node->nodes[i] = replaced;
      }
      return Collapse(node);
    }

    // nullptr for a node with nothing left; otherwise `node`.
    static Node* Collapse(Node* node) {
      if (node->data.empty() && node->nodes.empty()) {
        Unref(node);
        return nullptr;
      }
      return node;
    }

    PersistentMap& map_;
    const uint64_t id_;
  };

 private:
  static constexpr unsigned kBits = 5;
  // Past this shift the hash has no bits left: keys end in a collision node.
  static constexpr unsigned kMaxShift = 64;

  struct Node {
    explicit Node(uint64_t edit_id) : edit(edit_id) {}
    Node(const Node& other, uint64_t edit_id)
        : datamap(other.datamap),
          nodemap(other.nodemap),
          collision_node(other.collision_node),
          edit(edit_id),
          data(other.data),
          nodes(other.nodes) {
      for (Node* child : nodes) Ref(child);
    }
    ~Node() {
      for (Node* child : nodes) Unref(child);
    }
    // A collision node lists keys of equal hashes; it has no bitmaps.
    bool collision() const { return collision_node; }

    std::atomic<uint32_t> refs{1};
    uint32_t datamap = 0;
    uint32_t nodemap = 0;
    bool collision_node = false;
    const uint64_t edit;  // the Editor that made it (and alone may change it)
    std::vector<std::pair<K, V>> data;  // one per datamap bit, in bit order
    std::vector<Node*> nodes;           // one per nodemap bit, in bit order; owned references
  };

  // Nodes grow one entry at a time and most never grow again, so they keep
  // no slack: a vector's doubling would leave a fleet's tries a third empty.
  template <typename Vec>
  static void ReserveOneMore(Vec& v) {
    if (v.size() == v.capacity()) v.reserve(v.size() + 1);
  }

  static void Ref(Node* node) {
    if (node != nullptr) node->refs.fetch_add(1, std::memory_order_relaxed);
  }
  static void Unref(Node* node) {
    if (node != nullptr && node->refs.fetch_sub(1, std::memory_order_acq_rel) == 1) delete node;
  }

  static uint64_t NextEditId() {
    static std::atomic<uint64_t> next{1};
    return next.fetch_add(1, std::memory_order_relaxed);
  }

  // std::hash is the identity for integers and weak in its high bits for some
  // keys; the trie reads every bit, so spread them (splitmix64's finalizer).
  static uint64_t Mix(uint64_t x) {
    x ^= x >> 30;
    x *= 0xbf58476d1ce4e5b9ULL;
    x ^= x >> 27;
    x *= 0x94d049bb133111ebULL;
    x ^= x >> 31;
    return x;
  }
  static uint32_t BitFor(uint64_t h, unsigned shift) { return 1u << ((h >> shift) & 31u); }
  static size_t Index(uint32_t bitmap, uint32_t bit) {
    return static_cast<size_t>(std::popcount(bitmap & (bit - 1)));
  }

  template <typename F>
  static void Visit(const Node* node, F& f) {
    for (const auto& e : node->data) f(e.first, e.second);
    for (const Node* child : node->nodes) Visit(child, f);
  }

  Node* root_ = nullptr;
  size_t size_ = 0;
};

}  // namespace openimds::catalog
