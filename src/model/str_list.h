#pragma once

#include <cstddef>
#include <cstdint>
#include <cstring>
#include <initializer_list>
#include <new>
#include <utility>

#include "model/str.h"

namespace openimds::model {

// A list of Str the size of one pointer: the model's list-of-text field
// (addresses, CIDRs, security groups, ...). A NIC has ten such lists and most
// are empty; std::vector spends 24 bytes on each, StrList 8 and no heap while
// empty, and its storage has no slack once built. The interface is the part
// of std::vector the model uses; iterators are plain pointers.
class StrList {
 public:
  StrList() noexcept = default;
  StrList(std::initializer_list<Str> items) {  // NOLINT: implicit, like std::vector
    reserve(items.size());
    for (const Str& s : items) push_back(s);
  }
  StrList(const StrList& other) {
    reserve(other.size());
    for (const Str& s : other) push_back(s);
  }
  StrList(StrList&& other) noexcept : rep_(std::exchange(other.rep_, nullptr)) {}
  StrList& operator=(const StrList& other) {
    if (this != &other) StrList(other).Swap(*this);
    return *this;
  }
  StrList& operator=(StrList&& other) noexcept {
    StrList(std::move(other)).Swap(*this);
    return *this;
  }
  ~StrList() {
    clear();
    ::operator delete(rep_);
  }

  size_t size() const noexcept { return rep_ == nullptr ? 0 : rep_->size; }
  bool empty() const noexcept { return size() == 0; }
  const Str* begin() const noexcept { return rep_ == nullptr ? nullptr : Items(); }
  const Str* end() const noexcept { return begin() + size(); }
  Str* begin() noexcept { return rep_ == nullptr ? nullptr : Items(); }
  Str* end() noexcept { return begin() + size(); }
  const Str& operator[](size_t i) const noexcept { return Items()[i]; }
  Str& operator[](size_t i) noexcept { return Items()[i]; }
  const Str& front() const noexcept { return Items()[0]; }
  const Str& back() const noexcept { return Items()[size() - 1]; }

  void reserve(size_t n) {
    if (n <= Capacity()) return;
    Rep* grown = static_cast<Rep*>(::operator new(sizeof(Rep) + n * sizeof(Str)));
    grown->size = static_cast<uint32_t>(size());
    grown->capacity = static_cast<uint32_t>(n);
    // A Str is one pointer with no self-reference: moving its bytes moves it.
    if (rep_ != nullptr) std::memcpy(static_cast<void*>(grown + 1), Items(), size() * sizeof(Str));
    ::operator delete(rep_);
    rep_ = grown;
  }
  void push_back(Str s) { emplace_back(std::move(s)); }
  template <typename... Args>
  Str& emplace_back(Args&&... args) {
    Str value(std::forward<Args>(args)...);  // before growing: args may name an item
    if (size() == Capacity()) reserve(size() < 4 ? size() + 1 : size() + size() / 2);
    Str* slot = new (Items() + rep_->size) Str(std::move(value));
    ++rep_->size;
    return *slot;
  }
  void clear() noexcept {
    for (Str* s = begin(); s != end(); ++s) s->~Str();
    if (rep_ != nullptr) rep_->size = 0;
  }
  // Removes [first, last); returns where the next item now is.
  Str* erase(const Str* first, const Str* last) noexcept {
    Str* f = begin() + (first - begin());
    const size_t removed = static_cast<size_t>(last - first);
    if (removed == 0) return f;
    for (Str* s = f; s != f + removed; ++s) s->~Str();
    std::memmove(static_cast<void*>(f), f + removed,
                 static_cast<size_t>(end() - (f + removed)) * sizeof(Str));
    rep_->size -= static_cast<uint32_t>(removed);
    return f;
  }
  Str* erase(const Str* pos) noexcept { return erase(pos, pos + 1); }

  void Swap(StrList& other) noexcept { std::swap(rep_, other.rep_); }

  friend bool operator==(const StrList& a, const StrList& b) noexcept {
    if (a.size() != b.size()) return false;
    for (size_t i = 0; i < a.size(); ++i) {
      if (a[i] != b[i]) return false;
    }
    return true;
  }

 private:
  struct Rep {
    uint32_t size;
    uint32_t capacity;
  };
  static_assert(sizeof(Rep) % alignof(Str) == 0);

  size_t Capacity() const noexcept { return rep_ == nullptr ? 0 : rep_->capacity; }
  Str* Items() const noexcept { return reinterpret_cast<Str*>(rep_ + 1); }

  Rep* rep_ = nullptr;
};

static_assert(sizeof(StrList) == sizeof(void*));

}  // namespace openimds::model
