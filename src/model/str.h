#pragma once

#include <atomic>
#include <compare>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <ostream>
#include <string>
#include <string_view>

#include <boost/core/detail/string_view.hpp>  // boost::json::string_view

namespace openimds::model {

// An immutable string the size of one pointer: the model's text field.
//
// A fleet holds a million records of some sixty text fields each, most of
// them empty or repeated across instances (region, zone, image, VPC, subnet,
// security groups, tag keys). std::string spends 32 bytes on every field,
// empty or not, and a heap copy of every repeated value; Str spends 8 bytes,
// nothing when empty, and one shared copy of an interned value.
//
// The text lives in a reference-counted heap block (NUL-terminated); copying
// a Str bumps the count, so copying a record shares its text. Str converts
// implicitly to std::string_view (and to std::string, which copies), so code
// that reads a field reads it as it read the std::string it replaced.
//
// Thread-safety: a Str is a value; distinct Str objects sharing one block may
// be used and destroyed on any threads at once.
class Str {
 public:
  Str() noexcept = default;
  Str(std::string_view text);  // NOLINT: implicit, as std::string is from text
  Str(const std::string& text) : Str(std::string_view(text)) {}  // NOLINT
  Str(const char* text) : Str(std::string_view(text)) {}  // NOLINT
  Str(const Str& other) noexcept : block_(other.block_) { Retain(); }
  Str(Str&& other) noexcept : block_(other.block_) { other.block_ = nullptr; }
  Str& operator=(const Str& other) noexcept {
    Str copy(other);
    Swap(copy);
    return *this;
  }
  Str& operator=(Str&& other) noexcept {
    Str moved(std::move(other));
    Swap(moved);
    return *this;
  }
  ~Str() { Release(); }

  // The one shared block holding `text`: every Interned() call with the same
  // text returns a Str sharing its bytes. For values that repeat across
  // instances. Blocks nobody holds are freed by a later intern call, in
  // batches, so the intern table stays about twice the live distinct values.
  static Str Interned(std::string_view text);
  // Entries in the intern table, counting those no Str holds any more but
  // that no sweep has freed yet. For tests and benchmarks.
  static size_t InternedCount();

  // Moves the text of every Str in `fields` that holds a block of its own
  // (neither interned nor already packed) into one shared allocation, so a
  // record's dozen unique values (id, name, MAC, addresses, keys,
  // credentials) cost one malloc instead of one each. The Strs read the same
  // text afterwards; the allocation is freed when the last of them goes.
  static void Pack(Str* const* fields, size_t count);

  std::string_view view() const noexcept {
    return block_ == nullptr ? std::string_view() : std::string_view(block_->data, Size());
  }
  operator std::string_view() const noexcept { return view(); }  // NOLINT
  operator std::string() const { return std::string(view()); }   // NOLINT
  std::string str() const { return std::string(view()); }
  // So that Boost.JSON takes a Str where it takes text (keys and values).
  operator boost::core::string_view() const noexcept {  // NOLINT
    return boost::core::string_view(data(), size());
  }

  const char* data() const noexcept { return block_ == nullptr ? "" : block_->data; }
  const char* c_str() const noexcept { return data(); }
  size_t size() const noexcept { return block_ == nullptr ? 0 : Size(); }
  size_t length() const noexcept { return size(); }
  bool empty() const noexcept { return block_ == nullptr; }
  const char* begin() const noexcept { return data(); }
  const char* end() const noexcept { return data() + size(); }
  char operator[](size_t i) const noexcept { return data()[i]; }
  char front() const noexcept { return data()[0]; }
  char back() const noexcept { return data()[size() - 1]; }
  void clear() noexcept { Str().Swap(*this); }

  static constexpr size_t npos = std::string_view::npos;
  size_t find(std::string_view s, size_t pos = 0) const noexcept { return view().find(s, pos); }
  size_t find(char c, size_t pos = 0) const noexcept { return view().find(c, pos); }
  size_t rfind(std::string_view s, size_t pos = npos) const noexcept {
    return view().rfind(s, pos);
  }
  size_t rfind(char c, size_t pos = npos) const noexcept { return view().rfind(c, pos); }
  size_t find_first_of(std::string_view s, size_t pos = 0) const noexcept {
    return view().find_first_of(s, pos);
  }
  size_t find_first_not_of(std::string_view s, size_t pos = 0) const noexcept {
    return view().find_first_not_of(s, pos);
  }
  std::string_view substr(size_t pos, size_t n = npos) const { return view().substr(pos, n); }
  bool starts_with(std::string_view s) const noexcept { return view().starts_with(s); }
  bool starts_with(char c) const noexcept { return view().starts_with(c); }
  bool ends_with(std::string_view s) const noexcept { return view().ends_with(s); }
  bool ends_with(char c) const noexcept { return view().ends_with(c); }
  int compare(std::string_view s) const noexcept { return view().compare(s); }

  void Swap(Str& other) noexcept { std::swap(block_, other.block_); }

  friend bool operator==(const Str& a, const Str& b) noexcept {
    return a.block_ == b.block_ || a.view() == b.view();
  }
  friend bool operator==(const Str& a, std::string_view b) noexcept { return a.view() == b; }
  friend bool operator==(const Str& a, const std::string& b) noexcept { return a.view() == b; }
  friend bool operator==(const Str& a, const char* b) noexcept { return a.view() == b; }
  friend std::strong_ordering operator<=>(const Str& a, const Str& b) noexcept {
    return a.view() <=> b.view();
  }
  friend std::strong_ordering operator<=>(const Str& a, std::string_view b) noexcept {
    return a.view() <=> b;
  }
  friend std::strong_ordering operator<=>(const Str& a, const std::string& b) noexcept {
    return a.view() <=> std::string_view(b);
  }
  friend std::strong_ordering operator<=>(const Str& a, const char* b) noexcept {
    return a.view() <=> std::string_view(b);
  }
  friend std::string operator+(const std::string& a, const Str& b) {
    std::string out;
    out.reserve(a.size() + b.size());
    out.append(a).append(b.view());
    return out;
  }
  friend std::string operator+(const Str& a, const std::string& b) {
    std::string out;
    out.reserve(a.size() + b.size());
    out.append(a.view()).append(b);
    return out;
  }
  friend std::string operator+(const char* a, const Str& b) { return std::string(a) + b; }
  friend std::string operator+(const Str& a, const char* b) { return a + std::string(b); }
  friend std::string operator+(const Str& a, char b) {
    std::string out(a.view());
    out += b;
    return out;
  }
  friend std::ostream& operator<<(std::ostream& os, const Str& s) { return os << s.view(); }

 private:
  // size_and_flag holds the length in its low 30 bits, "interned" in the
  // top one and "packed" in the next. A packed block lives inside a Pack()
  // allocation: its `refs` then holds its byte offset from that allocation's
  // start, whose own first word is the count every Str inside shares.
  struct Block {
    std::atomic<uint32_t> refs;
    uint32_t size_and_flag;
    char data[1];  // size + 1 bytes allocated, NUL-terminated
  };
  static constexpr uint32_t kInternedBit = 0x80000000u;
  static constexpr uint32_t kPackedBit = 0x40000000u;
  static constexpr uint32_t kFlagBits = kInternedBit | kPackedBit;
  friend class InternTable;

  size_t Size() const noexcept { return block_->size_and_flag & ~kFlagBits; }
  // The count to change for this Str: its block's, or its pack's.
  std::atomic<uint32_t>& Count() const noexcept {
    if (block_->size_and_flag & kPackedBit) {
      const uint32_t offset = block_->refs.load(std::memory_order_relaxed);
      return *reinterpret_cast<std::atomic<uint32_t>*>(reinterpret_cast<char*>(block_) - offset);
    }
    return block_->refs;
  }
  void Retain() const noexcept {
    if (block_ != nullptr) Count().fetch_add(1, std::memory_order_relaxed);
  }
  void Release() noexcept;

  Block* block_ = nullptr;
};

static_assert(sizeof(Str) == sizeof(void*));

}  // namespace openimds::model

template <>
struct std::hash<openimds::model::Str> {
  size_t operator()(const openimds::model::Str& s) const noexcept {
    return std::hash<std::string_view>()(s.view());
  }
};
