#pragma once

#include <memory>

namespace openimds::model {

// A group of fields most records leave empty, kept behind one pointer: a
// record that sets none of them pays 8 bytes instead of sizeof(T), which is
// what a fleet of a million records needs (docs/design-notes.md, "Memory per
// instance").
//
// Reads see an empty T while nothing is set (operator-> and operator* never
// allocate); writes go through mut(), which makes the group on first use.
// Copies are deep, so a Box is a plain value like the fields it replaces.
template <typename T>
class Box {
 public:
  Box() = default;
  Box(T value) : p_(std::make_unique<T>(std::move(value))) {}  // NOLINT: implicit, like a T
  Box(const Box& o) : p_(o.p_ ? std::make_unique<T>(*o.p_) : nullptr) {}
  Box(Box&&) noexcept = default;
  Box& operator=(const Box& o) {
    if (this != &o) p_ = o.p_ ? std::make_unique<T>(*o.p_) : nullptr;
    return *this;
  }
  Box& operator=(Box&&) noexcept = default;
  ~Box() = default;

  const T& operator*() const { return p_ ? *p_ : Empty(); }
  const T* operator->() const { return &**this; }
  // The group, made empty first if nothing was set.
  T& mut() {
    if (!p_) p_ = std::make_unique<T>();
    return *p_;
  }
  // Holds `value`, or nothing when it is all defaults.
  void Set(T value) {
    if (value == Empty()) {
      p_.reset();
    } else {
      p_ = std::make_unique<T>(std::move(value));
    }
  }
  bool has_value() const { return p_ != nullptr; }
  void reset() { p_.reset(); }
  // Frees the group when it holds nothing but defaults (after a parse that
  // saw the group's fields empty).
  void Compact() {
    if (p_ && *p_ == Empty()) p_.reset();
  }

  friend bool operator==(const Box& a, const Box& b) { return *a == *b; }

 private:
  static const T& Empty() {
    static const T* const empty = new T();  // never destroyed: read after main returns
    return *empty;
  }

  std::unique_ptr<T> p_;
};

}  // namespace openimds::model
