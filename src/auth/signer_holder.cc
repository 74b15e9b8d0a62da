#include "auth/signer_holder.h"

#include <array>
#include <cstdlib>

namespace openimds::auth::internal {
namespace {

// A thread rarely reads more than two holders (the proxy: chain verifier and
// signer; the server: one key set), so a handful of slots never thrash. If
// more holders are in use, the oldest-filled slot is reused.
constexpr size_t kSlots = 4;

struct Slot {
  uint64_t holder = 0;      // SwappableCore::id_; 0 = empty
  uint64_t generation = 0;  // the holder's generation when `object` was copied
  std::shared_ptr<const void> object;
};

struct ThreadCache {
  std::array<Slot, kSlots> slots;
  size_t next_victim = 0;
};

// Per thread; released when the thread exits. Holds a reference to each
// object this thread used last, which is what keeps a replaced object alive
// while this thread may still be using it.
thread_local ThreadCache cache;

std::atomic<uint64_t> next_id{1};

}  // namespace

SwappableCore::SwappableCore(std::shared_ptr<const void> initial)
    : id_(next_id.fetch_add(1, std::memory_order_relaxed)), current_(std::move(initial)) {
  // A null object would make every Get() a null dereference: a programming
  // error in app/, never input from a guest or an operator.
  if (!current_) std::abort();
}

const void* SwappableCore::Get() const {
  // Acquire pairs with the release in Set(): a thread that learns of a Set()
  // by other means (a latch, a log line it read) sees the new generation.
  const uint64_t gen = generation_.load(std::memory_order_acquire);
  ThreadCache& c = cache;
  Slot* slot = nullptr;
  for (Slot& s : c.slots) {
    if (s.holder == id_) {
      if (s.generation == gen) return s.object.get();  // the hot path
      slot = &s;
      break;
    }
  }
  if (slot == nullptr) {
    for (Slot& s : c.slots) {
      if (s.holder == 0) {
        slot = &s;
        break;
      }
    }
  }
  if (slot == nullptr) {
    slot = &c.slots[c.next_victim];
    c.next_victim = (c.next_victim + 1) % kSlots;
  }
  std::shared_ptr<const void> previous;  // released after the lock, not under it
  {
    std::lock_guard lock(mu_);
    previous = std::move(slot->object);
    slot->object = current_;
    // Read under the lock, so it is the generation of exactly this object.
    slot->generation = generation_.load(std::memory_order_relaxed);
    slot->holder = id_;
  }
  return slot->object.get();
}

std::shared_ptr<const void> SwappableCore::Snapshot() const {
  std::lock_guard lock(mu_);
  return current_;
}

void SwappableCore::Set(std::shared_ptr<const void> next) {
  if (!next) std::abort();  // see the constructor
  std::shared_ptr<const void> old;  // dropped after the lock
  std::lock_guard lock(mu_);
  old = std::exchange(current_, std::move(next));
  generation_.fetch_add(1, std::memory_order_release);
}

}  // namespace openimds::auth::internal
