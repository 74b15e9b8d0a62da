#include "model/str.h"

#include <cstddef>
#include <cstring>
#include <mutex>
#include <new>
#include <stdexcept>
#include <vector>

namespace openimds::model {

// The intern table: open addressing over block pointers (8 bytes a slot, at
// most half full), in shards so the store's parse threads rarely meet. A
// block is freed only by a sweep under its shard's lock, and only once its
// count is zero: a Str is made from the table only under that lock, so a
// block at zero there has no holder and gets none.
class InternTable {
 public:
  static InternTable& Get() {
    static InternTable* table = new InternTable();  // never destroyed: Strs outlive main
    return *table;
  }

  size_t Count() {
    size_t n = 0;
    for (Shard& shard : shards_) {
      std::lock_guard lock(shard.mutex);
      n += shard.count;
    }
    return n;
  }

  Str Intern(std::string_view text) {
    const size_t hash = std::hash<std::string_view>()(text);
    // The top bits pick the shard; the low bits, the slot within it.
    Shard& shard = shards_[(hash >> 58) % kShards];
    std::lock_guard lock(shard.mutex);
    if (shard.slots.empty()) shard.slots.assign(kInitialSlots, nullptr);
    size_t mask = shard.slots.size() - 1;
    for (size_t i = hash & mask;; i = (i + 1) & mask) {
      Str::Block* b = shard.slots[i];
      if (b == nullptr) break;
      if ((b->size_and_flag & ~Str::kInternedBit) == text.size() &&
          std::memcmp(b->data, text.data(), text.size()) == 0) {
        b->refs.fetch_add(1, std::memory_order_relaxed);
        Str out;
        out.block_ = b;
        return out;
      }
    }
    if ((shard.count + 1) * 2 > shard.slots.size()) {
      Rebuild(shard);
      mask = shard.slots.size() - 1;
    }
    Str out(text);
    out.block_->size_and_flag |= Str::kInternedBit;
    size_t i = hash & mask;
    while (shard.slots[i] != nullptr) i = (i + 1) & mask;
    shard.slots[i] = out.block_;
    ++shard.count;
    return out;
  }

 private:
  static constexpr size_t kShards = 64;
  static constexpr size_t kInitialSlots = 64;

  struct Shard {
    std::mutex mutex;
    std::vector<Str::Block*> slots;  // guarded by mutex; size a power of two
    size_t count = 0;                // guarded by mutex
  };

  // Frees the blocks nobody holds, then re-inserts the rest into a table of
  // the size that keeps it at most a quarter full after the sweep, so the
  // next sweep is at least as many inserts away as there are live entries.
  static void Rebuild(Shard& shard) {
    std::vector<Str::Block*> live;
    live.reserve(shard.count);
    for (Str::Block* b : shard.slots) {
      if (b == nullptr) continue;
      if (b->refs.load(std::memory_order_acquire) == 0) {
        b->refs.~atomic();
        ::operator delete(b);
      } else {
        live.push_back(b);
      }
    }
    size_t size = kInitialSlots;
    while (size < live.size() * 4) size *= 2;
    shard.slots.assign(size, nullptr);
    const size_t mask = size - 1;
    for (Str::Block* b : live) {
      const std::string_view text(b->data, b->size_and_flag & ~Str::kInternedBit);
      size_t i = std::hash<std::string_view>()(text) & mask;
      while (shard.slots[i] != nullptr) i = (i + 1) & mask;
      shard.slots[i] = b;
    }
    shard.count = live.size();
  }

  Shard shards_[kShards];
};

Str::Str(std::string_view text) {
  if (text.empty()) return;
  if (text.size() >= kInternedBit) throw std::length_error("model::Str: text of 2 GiB or more");
  void* memory = ::operator new(offsetof(Block, data) + text.size() + 1);
  block_ = static_cast<Block*>(memory);
  new (&block_->refs) std::atomic<uint32_t>(1);
  block_->size_and_flag = static_cast<uint32_t>(text.size());
  std::memcpy(block_->data, text.data(), text.size());
  block_->data[text.size()] = '\0';
}

Str Str::Interned(std::string_view text) {
  if (text.empty()) return Str();
  return InternTable::Get().Intern(text);
}

size_t Str::InternedCount() { return InternTable::Get().Count(); }

void Str::Release() noexcept {
  if (block_ == nullptr) return;
  if (block_->size_and_flag & kInternedBit) {
    // The intern table frees it once the count is zero (see InternTable).
    block_->refs.fetch_sub(1, std::memory_order_release);
    return;
  }
  if (block_->refs.fetch_sub(1, std::memory_order_acq_rel) == 1) {
    block_->refs.~atomic();
    ::operator delete(block_);
  }
}

}  // namespace openimds::model
