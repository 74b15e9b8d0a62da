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
      if ((b->size_and_flag & ~Str::kFlagBits) == text.size() &&
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
      const std::string_view text(b->data, b->size_and_flag & ~Str::kFlagBits);
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
  if (text.size() >= kPackedBit) throw std::length_error("model::Str: text of 1 GiB or more");
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

void Str::Pack(Str* const* fields, size_t count) {
  // Each packed text: its 8-byte header, the text and its NUL, rounded up to
  // the header's alignment; the allocation starts with the shared count.
  constexpr size_t kAlign = alignof(Block);
  constexpr size_t kHead = (sizeof(std::atomic<uint32_t>) + kAlign - 1) / kAlign * kAlign;
  auto packable = [](const Str* s) {
    return s->block_ != nullptr && (s->block_->size_and_flag & kFlagBits) == 0;
  };
  size_t total = kHead;
  size_t n = 0;
  for (size_t i = 0; i < count; ++i) {
    if (!packable(fields[i])) continue;
    total += (offsetof(Block, data) + fields[i]->Size() + 1 + kAlign - 1) / kAlign * kAlign;
    ++n;
  }
  if (n < 2 || total >= kPackedBit) return;  // nothing to gain, or too large for an offset
  char* base = static_cast<char*>(::operator new(total));
  auto* shared = new (base) std::atomic<uint32_t>(0);
  size_t at = kHead;
  for (size_t i = 0; i < count; ++i) {
    Str* s = fields[i];
    if (!packable(s)) continue;
    const size_t size = s->Size();
    Block* b = reinterpret_cast<Block*>(base + at);
    new (&b->refs) std::atomic<uint32_t>(static_cast<uint32_t>(at));
    b->size_and_flag = static_cast<uint32_t>(size) | kPackedBit;
    std::memcpy(b->data, s->block_->data, size);
    b->data[size] = '\0';
    Str packed;
    packed.block_ = b;
    shared->fetch_add(1, std::memory_order_relaxed);
    *s = std::move(packed);  // releases the block it held
    at += (offsetof(Block, data) + size + 1 + kAlign - 1) / kAlign * kAlign;
  }
}

void Str::Release() noexcept {
  if (block_ == nullptr) return;
  if (block_->size_and_flag & kPackedBit) {
    std::atomic<uint32_t>& shared = Count();
    if (shared.fetch_sub(1, std::memory_order_acq_rel) == 1) {
      shared.~atomic();
      ::operator delete(static_cast<void*>(&shared));
    }
    return;
  }
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
