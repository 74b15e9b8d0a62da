#include "model/json_reader.h"

#include <cstdint>
#include <limits>

namespace openimds::model::json_reader {

namespace json = boost::json;
using common::Status;

std::string PointerToken(std::string_view key) {
  std::string out;
  out.reserve(key.size());
  for (char c : key) {
    if (c == '~') {
      out += "~0";
    } else if (c == '/') {
      out += "~1";
    } else {
      out += c;
    }
  }
  return out;
}

std::string Child(const std::string& at, std::string_view key) {
  return at + "/" + PointerToken(key);
}
std::string Child(const std::string& at, size_t index) { return at + "/" + std::to_string(index); }

void Path::AppendTo(std::string& out) const {
  // Recursion depth is the pointer's depth: a handful of segments.
  if (parent_ != nullptr) parent_->AppendTo(out);
  switch (kind_) {
    case Kind::kRoot:
      break;
    case Kind::kRaw:
      out += key_;
      break;
    case Kind::kKey:
      out += '/';
      out += PointerToken(key_);
      break;
    case Kind::kIndex:
      out += '/';
      out += std::to_string(index_);
      break;
  }
}

std::string Path::ToString() const {
  std::string out;
  AppendTo(out);
  return out;
}

Status Err(const std::string& at, std::string_view what) {
  return common::InvalidArgument((at.empty() ? std::string("/") : at) + ": " + std::string(what));
}

Status Err(const Path& at, std::string_view what) { return Err(at.ToString(), what); }

namespace {

Status ReadObjectFrom(const json::value& v, const Path& at, std::initializer_list<Field> fields,
                      MoreFields* more) {
  if (!v.is_object()) return Err(at, "expected object");
  // Documents written by ToJsonText list their keys in the order of
  // `fields`, so the search starts after the previous match and wraps around:
  // one comparison per key in the usual case. Names in `fields` are unique, so
  // where the search starts does not change what it finds. Members of `more`
  // come after the table's in those documents: after one of them, `more` is
  // asked first.
  const Field* const begin = fields.begin();
  const Field* const end = fields.end();
  const Field* next = begin;
  bool in_more = false;
  for (const auto& member : v.get_object()) {
    const std::string_view key = member.key();
    const Path child(at, key);
    Status status;
    const bool asked_more = in_more;
    if (asked_more) {
      if (more->Read(key, member.value(), child, status)) {
        if (!status.ok()) return status;
        continue;
      }
      in_more = false;
    }
    const Field* found = nullptr;
    for (const Field* f = next; f != end; ++f) {
      if (f->name == key) {
        found = f;
        break;
      }
    }
    for (const Field* f = begin; found == nullptr && f != next; ++f) {
      if (f->name == key) found = f;
    }
    if (found == nullptr) {
      if (more != nullptr && !asked_more && more->Read(key, member.value(), child, status)) {
        in_more = true;
        if (!status.ok()) return status;
        continue;
      }
      return Err(child, "unknown field");
    }
    next = found + 1;
    if (Status s = found->read(member.value(), child); !s.ok()) return s;
  }
  return Status::Ok();
}

}  // namespace

Status ReadObject(const json::value& v, const Path& at, std::initializer_list<Field> fields) {
  return ReadObjectFrom(v, at, fields, nullptr);
}

Status ReadObject(const json::value& v, const Path& at, std::initializer_list<Field> fields,
                  MoreFields& more) {
  return ReadObjectFrom(v, at, fields, &more);
}

Status IntValue(const json::value& v, const Path& at, int& out) {
  if (!v.is_int64()) return Err(at, v.is_uint64() ? "out of range" : "expected integer");
  const int64_t n = v.get_int64();
  if (n < std::numeric_limits<int>::min() || n > std::numeric_limits<int>::max()) {
    return Err(at, "out of range");
  }
  out = static_cast<int>(n);
  return Status::Ok();
}

namespace {

// Reads an array of strings into `out` (a std::vector<std::string> or a
// StrList), each made by make(text).
template <typename List, typename Make>
Status ReadStrings(const json::value& v, const Path& at, List& out, Make make) {
  if (!v.is_array()) return Err(at, "expected array");
  out.clear();
  const auto& array = v.get_array();
  out.reserve(array.size());
  for (size_t i = 0; i < array.size(); ++i) {
    if (!array[i].is_string()) return Err(Path(at, i), "expected string");
    const json::string& s = array[i].get_string();
    out.push_back(make(std::string_view(s.data(), s.size())));
  }
  return Status::Ok();
}

}  // namespace

Status StringArrayValue(const json::value& v, const Path& at, std::vector<std::string>& out) {
  return ReadStrings(v, at, out, [](std::string_view text) { return std::string(text); });
}

Status StringArrayValue(const json::value& v, const Path& at, StrList& out, bool interned) {
  return ReadStrings(v, at, out, [interned](std::string_view text) {
    return interned ? Str::Interned(text) : Str(text);
  });
}

Status StringMapValue(const json::value& v, const Path& at, StringMap& out, bool interned) {
  if (!v.is_object()) return Err(at, "expected object");
  out.clear();
  out.reserve(v.get_object().size());
  for (const auto& member : v.get_object()) {
    if (!member.value().is_string()) return Err(Path(at, member.key()), "expected string");
    const json::string& value = member.value().get_string();
    const std::string_view text(value.data(), value.size());
    const std::string_view key(member.key().data(), member.key().size());
    if (interned) {
      out.insert_or_assign(Str::Interned(key), Str::Interned(text));
    } else {
      out.insert_or_assign(Str(key), Str(text));
    }
  }
  return Status::Ok();
}

Status ChoiceValue(const json::value& v, const Path& at, bool& out, std::string_view if_true,
                   std::string_view if_false) {
  if (v.is_string() && v.get_string() == if_true) {
    out = true;
  } else if (v.is_string() && v.get_string() == if_false) {
    out = false;
  } else {
    return Err(at,
               "expected \"" + std::string(if_true) + "\" or \"" + std::string(if_false) + "\"");
  }
  return Status::Ok();
}

}  // namespace openimds::model::json_reader
