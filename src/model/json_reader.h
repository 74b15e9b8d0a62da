#pragma once

#include <cstddef>
#include <initializer_list>
#include <string>
#include <string_view>
#include <type_traits>
#include <vector>

#include <boost/json/value.hpp>

#include "common/status.h"
#include "model/instance.h"  // StringMap
#include "model/str_list.h"

// The small toolkit the model's strict JSON readers share (every concept's
// *_json.cc). Internal to the model module.
//
// Every record the store loads and every record an import writes goes through
// these readers, so the common (valid) case is kept free of allocations:
// pointers are built only when an error is reported, and readers are
// non-owning references to the caller's lambdas.
namespace openimds::model::json_reader {

// JSON pointers (RFC 6901) for error messages: "~" -> "~0", "/" -> "~1".
std::string PointerToken(std::string_view key);
std::string Child(const std::string& at, std::string_view key);
std::string Child(const std::string& at, size_t index);

// A JSON pointer kept as a chain of segments on the caller's stack; its text
// is built only by ToString(), i.e. only when an error is reported. A Path
// refers to its parent and to its key's characters: both must outlive it, so
// name every intermediate Path (never bind a Path to a temporary parent).
class Path {
 public:
  Path() = default;  // the root, ""
  // `pointer` is a whole pointer, already escaped ("/iam/credentials").
  explicit Path(std::string_view pointer) : key_(pointer), kind_(Kind::kRaw) {}
  Path(const Path& parent, std::string_view key)
      : parent_(&parent), key_(key), kind_(Kind::kKey) {}
  Path(const Path& parent, size_t index) : parent_(&parent), index_(index), kind_(Kind::kIndex) {}

  // The pointer's text, e.g. "/nics/0/mac"; "" for the root.
  std::string ToString() const;

 private:
  void AppendTo(std::string& out) const;

  enum class Kind { kRoot, kRaw, kKey, kIndex };
  const Path* parent_ = nullptr;
  std::string_view key_;
  size_t index_ = 0;
  Kind kind_ = Kind::kRoot;
};

// InvalidArgument whose message starts with the pointer; the root is "/" (the
// empty pointer would make a message start with ": ").
common::Status Err(const std::string& at, std::string_view what);
common::Status Err(const Path& at, std::string_view what);

// Reads one value found at pointer `at`. Non-owning (a function reference):
// it refers to the callable it was made from, which must outlive it. Fields
// built in the argument list of ReadObject satisfy that by construction.
class Reader {
 public:
  template <typename F>
    requires(!std::is_same_v<std::remove_cvref_t<F>, Reader>)
  Reader(F&& f)  // NOLINT: implicit, so that a lambda is a Reader
      : callable_(const_cast<void*>(static_cast<const void*>(&f))),
        call_([](void* c, const boost::json::value& v, const Path& at) -> common::Status {
          return (*static_cast<std::remove_reference_t<F>*>(c))(v, at);
        }) {}

  common::Status operator()(const boost::json::value& v, const Path& at) const {
    return call_(callable_, v, at);
  }

 private:
  void* callable_;
  common::Status (*call_)(void*, const boost::json::value&, const Path&);
};

struct Field {
  std::string_view name;
  Reader read;
};

// Reads an object field by field, in document order, so the first offender in
// the text is the one reported; a key not in `fields` is "unknown field".
common::Status ReadObject(const boost::json::value& v, const Path& at,
                          std::initializer_list<Field> fields);

// Members of an object that a ReadObject table does not name, from another
// table: the members of the record's parts (record_part.h), read in
// document order with the record's own.
class MoreFields {
 public:
  // When `key` is one of these members: reads `value` into its place, sets
  // `status` to the reader's result and returns true. Otherwise false.
  virtual bool Read(std::string_view key, const boost::json::value& value, const Path& at,
                    common::Status& status) = 0;

 protected:
  ~MoreFields() = default;
};

// As above; a key not in `fields` is offered to `more` before it is
// "unknown field". Names in `fields` and in `more` must differ.
common::Status ReadObject(const boost::json::value& v, const Path& at,
                          std::initializer_list<Field> fields, MoreFields& more);

// "expected string" / "expected integer" / "out of range" / "expected array".
// Each returns a callable to pass as a Field's reader.
inline auto String(std::string& out) {
  return [&out](const boost::json::value& v, const Path& at) -> common::Status {
    if (!v.is_string()) return Err(at, "expected string");
    const boost::json::string& s = v.get_string();
    out.assign(s.data(), s.size());
    return common::Status::Ok();
  };
}
// Into the model's Str; Interned for values that repeat across instances
// (region, zone, VPC, ...), so a fleet holds one copy of each.
inline auto String(Str& out) {
  return [&out](const boost::json::value& v, const Path& at) -> common::Status {
    if (!v.is_string()) return Err(at, "expected string");
    const boost::json::string& s = v.get_string();
    out = Str(std::string_view(s.data(), s.size()));
    return common::Status::Ok();
  };
}
inline auto InternedString(Str& out) {
  return [&out](const boost::json::value& v, const Path& at) -> common::Status {
    if (!v.is_string()) return Err(at, "expected string");
    const boost::json::string& s = v.get_string();
    out = Str::Interned(std::string_view(s.data(), s.size()));
    return common::Status::Ok();
  };
}
common::Status IntValue(const boost::json::value& v, const Path& at, int& out);
inline auto Int(int& out) {
  return [&out](const boost::json::value& v, const Path& at) { return IntValue(v, at, out); };
}
common::Status StringArrayValue(const boost::json::value& v, const Path& at,
                                std::vector<std::string>& out);
inline auto StringArray(std::vector<std::string>& out) {
  return [&out](const boost::json::value& v, const Path& at) {
    return StringArrayValue(v, at, out);
  };
}

common::Status StringArrayValue(const boost::json::value& v, const Path& at,
                                StrList& out, bool interned);
inline auto StringArray(StrList& out) {
  return [&out](const boost::json::value& v, const Path& at) {
    return StringArrayValue(v, at, out, false);
  };
}
inline auto InternedStringArray(StrList& out) {
  return [&out](const boost::json::value& v, const Path& at) {
    return StringArrayValue(v, at, out, true);
  };
}

// An array whose items `read_one(item, at, out_item)` reads.
template <typename T, typename ReadOne>
auto Array(std::vector<T>& out, ReadOne read_one) {
  return [&out, read_one](const boost::json::value& v, const Path& at) -> common::Status {
    if (!v.is_array()) return Err(at, "expected array");
    out.clear();
    for (size_t i = 0; i < v.get_array().size(); ++i) {
      T item;
      if (common::Status s = read_one(v.get_array()[i], Path(at, i), item); !s.ok()) return s;
      out.push_back(std::move(item));
    }
    return common::Status::Ok();
  };
}

// An object of strings. Keys and values are interned when `interned` (tags
// and block devices: a fleet repeats the same few keys and most values).
common::Status StringMapValue(const boost::json::value& v, const Path& at, StringMap& out,
                              bool interned);
inline auto StringMapReader(StringMap& out, bool interned = true) {
  return [&out, interned](const boost::json::value& v, const Path& at) {
    return StringMapValue(v, at, out, interned);
  };
}

// "enabled"/"disabled" and similar two-word enumerations: `out` is true for
// `if_true`, false for `if_false`, and anything else is
// "expected \"<if_true>\" or \"<if_false>\"".
common::Status ChoiceValue(const boost::json::value& v, const Path& at, bool& out,
                           std::string_view if_true, std::string_view if_false);
inline auto Choice(bool& out, std::string_view if_true, std::string_view if_false) {
  return [&out, if_true, if_false](const boost::json::value& v, const Path& at) {
    return ChoiceValue(v, at, out, if_true, if_false);
  };
}

}  // namespace openimds::model::json_reader
