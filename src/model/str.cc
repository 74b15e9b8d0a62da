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

  Str Intern(std::string_view text, size_t hash) {
    // The top bits pick the shard, the low bits the slot within it, and 16
    // bits between them are the tag a probe compares before it reads a block.
    Shard& shard = shards_[(hash >> 58) % kShards];
    const uint16_t tag = Tag(hash);
    std::lock_guard lock(shard.mutex);
    if (shard.slots.empty()) {
      shard.slots.assign(kInitialSlots, nullptr);
      shard.tags.assign(kInitialSlots, 0);
    }
    size_t mask = shard.slots.size() - 1;
    for (size_t i = hash & mask;; i = (i + 1) & mask) {
      Str::Block* b = shard.slots[i];
      if (b == nullptr) break;
      if (shard.tags[i] != tag) continue;
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
    Insert(shard, out.block_, hash);
    ++shard.count;
    return out;
  }

 private:
  static constexpr size_t kShards = 64;
  static constexpr size_t kInitialSlots = 64;

  struct Shard {
    std::mutex mutex;
    std::vector<Str::Block*> slots;  // guarded by mutex; size a power of two
    std::vector<uint16_t> tags;      // guarded by mutex; Tag() of each slot's text
    size_t count = 0;                // guarded by mutex
  };

  static uint16_t Tag(size_t hash) { return static_cast<uint16_t>(hash >> 32); }

  static void Insert(Shard& shard, Str::Block* b, size_t hash) {
    const size_t mask = shard.slots.size() - 1;
    size_t i = hash & mask;
    while (shard.slots[i] != nullptr) i = (i + 1) & mask;
    shard.slots[i] = b;
    shard.tags[i] = Tag(hash);
  }

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
    shard.tags.assign(size, 0);
    for (Str::Block* b : live) {
      const std::string_view text(b->data, b->size_and_flag & ~Str::kFlagBits);
      Insert(shard, b, std::hash<std::string_view>()(text));
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
  // Each thread keeps the last values it interned, by hash, in a small
  // direct-mapped cache: the values a fleet repeats (region, zone, VPC, tag
  // keys) are found there without the shard's lock. The cache holds counted
  // references, so no sweep frees what it points to; it keeps at most
  // kCacheSlots values alive per thread, until the thread ends.
  constexpr size_t kCacheSlots = 1024;
  thread_local Str cache[kCacheSlots];
  const size_t hash = std::hash<std::string_view>()(text);
  Str& cached = cache[hash % kCacheSlots];
  if (cached.view() == text) return cached;
  Str out = InternTable::Get().Intern(text, hash);
  cached = out;
  return out;
}

size_t Str::InternedCount() { return InternTable::Get().Count(); }

void Str::Pack(Str* const* fields, size_t count) {
  // Each packed text: its 8-byte header, the text and its NUL, rounded up to
  // the header's alignment; the allocation starts with the shared count. A
  // text equal to one packed before it shares that one (a record repeats its
  // hostname in three fields), so the first pass counts each text once.
  constexpr size_t kAlign = alignof(Block);
  constexpr size_t kHead = (sizeof(std::atomic<uint32_t>) + kAlign - 1) / kAlign * kAlign;
  auto packable = [](const Str* s) {
    return s->block_ != nullptr && (s->block_->size_and_flag & kFlagBits) == 0;
  };
  auto bytes = [](size_t size) {
    return (offsetof(Block, data) + size + 1 + kAlign - 1) / kAlign * kAlign;
  };
  // Fields are handled 64 at a time, so the bookkeeping stays on the stack.
  constexpr size_t kChunk = 64;
  if (count > kChunk) {
    Pack(fields, kChunk);
    Pack(fields + kChunk, count - kChunk);
    return;
  }
  // first_equal[i]: the index of the first packable field with fields[i]'s
  // text (i itself when it is the first).
  size_t first_equal[kChunk];
  size_t total = kHead;
  size_t distinct = 0;
  for (size_t i = 0; i < count; ++i) {
    if (!packable(fields[i])) continue;
    first_equal[i] = i;
    for (size_t j = 0; j < i; ++j) {
      if (packable(fields[j]) && first_equal[j] == j && fields[j]->view() == fields[i]->view()) {
        first_equal[i] = j;
        break;
      }
    }
    if (first_equal[i] != i) continue;
    total += bytes(fields[i]->Size());
    ++distinct;
  }
  if (distinct == 0 || total >= kPackedBit) return;  // nothing to pack, or too large for an offset
  char* base = static_cast<char*>(::operator new(total));
  auto* shared = new (base) std::atomic<uint32_t>(0);
  Str packed[kChunk];
  size_t at = kHead;
  for (size_t i = 0; i < count; ++i) {
    if (!packable(fields[i]) || first_equal[i] != i) continue;
    const size_t size = fields[i]->Size();
    Block* b = reinterpret_cast<Block*>(base + at);
    new (&b->refs) std::atomic<uint32_t>(static_cast<uint32_t>(at));
    b->size_and_flag = static_cast<uint32_t>(size) | kPackedBit;
    std::memcpy(b->data, fields[i]->block_->data, size);
    b->data[size] = '\0';
    shared->fetch_add(1, std::memory_order_relaxed);
    packed[i].block_ = b;
    at += bytes(size);
  }
  // Only now replace the fields: the texts compared above stay valid while
  // they are copied.
  for (size_t i = 0; i < count; ++i) {
    if (packable(fields[i])) *fields[i] = packed[first_equal[i]];
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
