#pragma once

#include <atomic>
#include <bit>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <functional>
#include <new>
#include <utility>

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
//
// Memory: a node is one allocation, a 32-byte header followed by its child
// pointers and its entries, sized exactly (no slack): a million keys make
// about 0.3 nodes per key, so separate arrays (two more mallocs and two
// vector headers per node) cost a fleet about 30 bytes per key and map.
template <typename K, typename V, typename Hash, typename Eq = std::equal_to<K>>
class PersistentMap {
  struct Node;
  using Item = std::pair<K, V>;

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
  // `key` may be any type Hash and Eq take beside K (a view of a string
  // key, say), so a lookup builds no K.
  template <typename L = K>
  const V* Find(const L& key) const {
    const uint64_t h = Mix(Hash()(key));
    const Node* node = root_;
    for (unsigned shift = 0; node != nullptr; shift += kBits) {
      if (node->collision()) {
        for (uint32_t i = 0; i < node->data_count; ++i) {
          if (Eq()(node->data()[i].first, key)) return &node->data()[i].second;
        }
        return nullptr;
      }
      const uint32_t bit = BitFor(h, shift);
      if ((node->datamap & bit) != 0) {
        const Item& e = node->data()[Index(node->datamap, bit)];
        return Eq()(e.first, key) ? &e.second : nullptr;
      }
      if ((node->nodemap & bit) == 0) return nullptr;
      node = node->nodes()[Index(node->nodemap, bit)];
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

    // Removes `key`; true if it was there.
    template <typename L = K>
    bool Erase(const L& key) {
      const uint64_t h = Mix(Hash()(key));
      bool removed = false;
      if (map_.root_ == nullptr) return false;
      map_.root_ = EraseIn(map_.root_, 0, h, key, removed);
      if (removed) --map_.size_;
      return removed;
    }

   private:
    // `node` (one reference of the caller's) as a node this Editor may write,
    // with room for `more_data` entries and `more_nodes` children beyond what
    // it holds. A node of another Editor is copied; one of ours that is too
    // small moves into a larger allocation. Either way the caller's reference
    // to the old node is dropped and the returned node replaces it.
    Node* Own(Node* node, uint32_t more_data = 0, uint32_t more_nodes = 0) {
      const bool fits = node->data_count + more_data <= node->data_capacity &&
                        node->node_count + more_nodes <= node->node_capacity;
      if (node->edit == id_ && fits) return node;
      Node* copy = Allocate(id_, node->node_count + more_nodes, node->data_count + more_data);
      copy->datamap = node->datamap;
      copy->nodemap = node->nodemap;
      copy->collision_node = node->collision_node;
      if (node->edit == id_) {
        // Ours: move everything over and leave the old node empty, so that
        // dropping it (now or when a caller drops its extra reference) frees
        // nothing twice.
        std::memcpy(static_cast<void*>(copy->nodes()), node->nodes(),
                    node->node_count * sizeof(Node*));
        for (uint32_t i = 0; i < node->data_count; ++i) {
          new (copy->data() + i) Item(std::move(node->data()[i]));
          node->data()[i].~Item();
        }
        copy->node_count = node->node_count;
        copy->data_count = node->data_count;
        node->node_count = 0;
        node->data_count = 0;
      } else {
        for (uint32_t i = 0; i < node->node_count; ++i) {
          copy->nodes()[i] = node->nodes()[i];
          Ref(copy->nodes()[i]);
        }
        copy->node_count = node->node_count;
        for (uint32_t i = 0; i < node->data_count; ++i) {
          new (copy->data() + i) Item(node->data()[i]);
          ++copy->data_count;
        }
      }
      Unref(node);
      return copy;
    }

    Node* NewNode(uint32_t nodes, uint32_t data) { return Allocate(id_, nodes, data); }

    Node* SetIn(Node* node, unsigned shift, uint64_t h, K&& key, V&& value, bool& added) {
      if (node == nullptr) {
        Node* fresh = NewNode(0, 1);
        fresh->datamap = BitFor(h, shift);
        AppendData(fresh, Item(std::move(key), std::move(value)));
        added = true;
        return fresh;
      }
      if (node->collision()) {
        for (uint32_t i = 0; i < node->data_count; ++i) {
          if (Eq()(node->data()[i].first, key)) {
            node = Own(node);
            node->data()[i] = Item(std::move(key), std::move(value));
            return node;
          }
        }
        node = Own(node, 1, 0);
        AppendData(node, Item(std::move(key), std::move(value)));
        added = true;
        return node;
      }
      const uint32_t bit = BitFor(h, shift);
      if ((node->datamap & bit) != 0) {
        const uint32_t i = Index(node->datamap, bit);
        if (Eq()(node->data()[i].first, key)) {
          node = Own(node);
          node->data()[i] = Item(std::move(key), std::move(value));
          return node;
        }
        // Two keys share this slot: push both one level down.
        node = Own(node, 0, 1);
        Item existing = std::move(node->data()[i]);
        const uint64_t existing_hash = Mix(Hash()(existing.first));
        EraseData(node, i);
        node->datamap &= ~bit;
        Node* child = Merge(shift + kBits, std::move(existing), existing_hash,
                            Item(std::move(key), std::move(value)), h);
        InsertChild(node, Index(node->nodemap, bit), child);
        node->nodemap |= bit;
        added = true;
        return node;
      }
      if ((node->nodemap & bit) != 0) {
        const uint32_t i = Index(node->nodemap, bit);
        node = Own(node);
        node->nodes()[i] = SetIn(node->nodes()[i], shift + kBits, h, std::move(key),
                                 std::move(value), added);
        return node;
      }
      node = Own(node, 1, 0);
      InsertData(node, Index(node->datamap, bit), Item(std::move(key), std::move(value)));
      node->datamap |= bit;
      added = true;
      return node;
    }

    // A node at `shift` holding two entries whose hashes agree below `shift`.
    Node* Merge(unsigned shift, Item&& a, uint64_t ha, Item&& b, uint64_t hb) {
      if (shift >= kMaxShift) {
        Node* node = NewNode(0, 2);
        node->collision_node = true;  // a collision node: datamap == nodemap == 0
        AppendData(node, std::move(a));
        AppendData(node, std::move(b));
        return node;
      }
      const uint32_t bit_a = BitFor(ha, shift);
      const uint32_t bit_b = BitFor(hb, shift);
      if (bit_a == bit_b) {
        Node* node = NewNode(1, 0);
        node->nodemap = bit_a;
        InsertChild(node, 0, Merge(shift + kBits, std::move(a), ha, std::move(b), hb));
        return node;
      }
      Node* node = NewNode(0, 2);
      node->datamap = bit_a | bit_b;
      if (bit_a < bit_b) {
        AppendData(node, std::move(a));
        AppendData(node, std::move(b));
      } else {
        AppendData(node, std::move(b));
        AppendData(node, std::move(a));
      }
      return node;
    }

    // Takes ownership of `node` (non-null); returns its replacement, nullptr
    // once it holds nothing.
    template <typename L>
    Node* EraseIn(Node* node, unsigned shift, uint64_t h, const L& key, bool& removed) {
      if (node->collision()) {
        for (uint32_t i = 0; i < node->data_count; ++i) {
          if (!Eq()(node->data()[i].first, key)) continue;
          node = Own(node);
          EraseData(node, i);
          removed = true;
          break;
        }
        return Collapse(node);
      }
      const uint32_t bit = BitFor(h, shift);
      if ((node->datamap & bit) != 0) {
        const uint32_t i = Index(node->datamap, bit);
        if (!Eq()(node->data()[i].first, key)) return node;
        node = Own(node);
        EraseData(node, i);
        node->datamap &= ~bit;
        removed = true;
        return Collapse(node);
      }
      if ((node->nodemap & bit) == 0) return node;
      const uint32_t i = Index(node->nodemap, bit);
      Node* child = node->nodes()[i];
      Ref(child);  // keep it alive while we look inside; the node still holds its own
      Node* replaced = EraseIn(child, shift + kBits, h, key, removed);
      if (!removed) {
        Unref(replaced);  // == child, our extra reference
        return node;
      }
      node = Own(node);
      Unref(node->nodes()[i]);
      if (replaced == nullptr) {
        EraseChild(node, i);
        node->nodemap &= ~bit;
      } else if (replaced->node_count == 0 && replaced->data_count == 1) {
        // A child left with one entry moves up into this node's entries, so
        // the trie stays as shallow as its keys need.
        EraseChild(node, i);
        node->nodemap &= ~bit;
        Item only = replaced->edit == id_ ? std::move(replaced->data()[0]) : replaced->data()[0];
        Unref(replaced);
        node = Own(node, 1, 0);
        InsertData(node, Index(node->datamap, bit), std::move(only));
        node->datamap |= bit;
      } else {
        node->nodes()[i] = replaced;
      }
      return Collapse(node);
    }

    // nullptr for a node with nothing left; otherwise `node`.
    static Node* Collapse(Node* node) {
      if (node->data_count == 0 && node->node_count == 0) {
        Unref(node);
        return nullptr;
      }
      return node;
    }

    // Entry and child edits on a node of ours with room for them.
    static void AppendData(Node* node, Item&& item) {
      new (node->data() + node->data_count) Item(std::move(item));
      ++node->data_count;
    }
    static void InsertData(Node* node, uint32_t at, Item&& item) {
      const uint32_t n = node->data_count;
      if (at == n) return AppendData(node, std::move(item));
      Item* d = node->data();
      new (d + n) Item(std::move(d[n - 1]));
      for (uint32_t j = n - 1; j > at; --j) d[j] = std::move(d[j - 1]);
      d[at] = std::move(item);
      ++node->data_count;
    }
    static void EraseData(Node* node, uint32_t at) {
      Item* d = node->data();
      const uint32_t n = node->data_count;
      for (uint32_t j = at; j + 1 < n; ++j) d[j] = std::move(d[j + 1]);
      d[n - 1].~Item();
      --node->data_count;
    }
    static void InsertChild(Node* node, uint32_t at, Node* child) {
      Node** c = node->nodes();
      std::memmove(static_cast<void*>(c + at + 1), c + at, (node->node_count - at) * sizeof(Node*));
      c[at] = child;
      ++node->node_count;
    }
    static void EraseChild(Node* node, uint32_t at) {
      Node** c = node->nodes();
      std::memmove(static_cast<void*>(c + at), c + at + 1,
                   (node->node_count - at - 1) * sizeof(Node*));
      --node->node_count;
    }

    PersistentMap& map_;
    const uint64_t id_;
  };

 private:
  // One allocation: this header, then node_capacity child pointers (owned
  // references, in nodemap bit order), then data_capacity entries (the first
  // data_count constructed, in datamap bit order).
  struct Node {
    explicit Node(uint64_t edit_id) : edit(edit_id) {}
    // A collision node lists keys of equal hashes; it has no bitmaps.
    bool collision() const { return collision_node; }
    Node** nodes() { return reinterpret_cast<Node**>(this + 1); }
    Node* const* nodes() const { return reinterpret_cast<Node* const*>(this + 1); }
    Item* data() { return reinterpret_cast<Item*>(nodes() + node_capacity); }
    const Item* data() const { return reinterpret_cast<const Item*>(nodes() + node_capacity); }

    std::atomic<uint32_t> refs{1};
    uint32_t datamap = 0;
    uint32_t nodemap = 0;
    uint32_t data_count = 0;
    uint32_t data_capacity = 0;
    uint8_t node_count = 0;  // at most 32
    uint8_t node_capacity = 0;
    bool collision_node = false;
    const uint64_t edit;  // the Editor that made it (and alone may change it)
  };
  static_assert(sizeof(Node) % alignof(Item) == 0 && alignof(Item) <= alignof(Node*),
                "entries follow the child pointers without padding");

  static constexpr unsigned kBits = 5;
  // Past this shift the hash has no bits left: keys end in a collision node.
  static constexpr unsigned kMaxShift = 64;

  static Node* Allocate(uint64_t edit, uint32_t nodes, uint32_t data) {
    void* memory = ::operator new(sizeof(Node) + nodes * sizeof(Node*) + data * sizeof(Item));
    Node* node = new (memory) Node(edit);
    node->node_capacity = static_cast<uint8_t>(nodes);
    node->data_capacity = data;
    return node;
  }

  static void Ref(Node* node) {
    if (node != nullptr) node->refs.fetch_add(1, std::memory_order_relaxed);
  }
  static void Unref(Node* node) {
    if (node == nullptr || node->refs.fetch_sub(1, std::memory_order_acq_rel) != 1) return;
    for (uint32_t i = 0; i < node->data_count; ++i) node->data()[i].~Item();
    for (uint32_t i = 0; i < node->node_count; ++i) Unref(node->nodes()[i]);
    node->~Node();
    ::operator delete(node);
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
  static uint32_t Index(uint32_t bitmap, uint32_t bit) {
    return static_cast<uint32_t>(std::popcount(bitmap & (bit - 1)));
  }

  template <typename F>
  static void Visit(const Node* node, F& f) {
    for (uint32_t i = 0; i < node->data_count; ++i) f(node->data()[i].first, node->data()[i].second);
    for (uint32_t i = 0; i < node->node_count; ++i) Visit(node->nodes()[i], f);
  }

  Node* root_ = nullptr;
  size_t size_ = 0;
};

}  // namespace openimds::catalog
