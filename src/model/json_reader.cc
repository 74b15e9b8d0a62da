#include "model/json_reader.h"

#include <algorithm>
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

Status Err(const std::string& at, std::string_view what) {
  return common::InvalidArgument((at.empty() ? std::string("/") : at) + ": " + std::string(what));
}

Status ReadObject(const json::value& v, const std::string& at,
                  std::initializer_list<Field> fields) {
  if (!v.is_object()) return Err(at, "expected object");
  for (const auto& member : v.get_object()) {
    const std::string_view key = member.key();
    const std::string child = Child(at, key);
    auto it =
        std::find_if(fields.begin(), fields.end(), [key](const Field& f) { return f.name == key; });
    if (it == fields.end()) return Err(child, "unknown field");
    if (Status s = it->read(member.value(), child); !s.ok()) return s;
  }
  return Status::Ok();
}

Reader String(std::string& out) {
  return [&out](const json::value& v, const std::string& at) {
    if (!v.is_string()) return Err(at, "expected string");
    out = std::string(v.get_string());
    return Status::Ok();
  };
}

Status IntValue(const json::value& v, const std::string& at, int& out) {
  if (!v.is_int64()) return Err(at, v.is_uint64() ? "out of range" : "expected integer");
  const int64_t n = v.get_int64();
  if (n < std::numeric_limits<int>::min() || n > std::numeric_limits<int>::max()) {
    return Err(at, "out of range");
  }
  out = static_cast<int>(n);
  return Status::Ok();
}

Reader Int(int& out) {
  return [&out](const json::value& v, const std::string& at) { return IntValue(v, at, out); };
}

Reader StringArray(std::vector<std::string>& out) {
  return [&out](const json::value& v, const std::string& at) {
    if (!v.is_array()) return Err(at, "expected array");
    out.clear();
    const auto& array = v.get_array();
    for (size_t i = 0; i < array.size(); ++i) {
      if (!array[i].is_string()) return Err(Child(at, i), "expected string");
      out.emplace_back(array[i].get_string());
    }
    return Status::Ok();
  };
}

}  // namespace openimds::model::json_reader
