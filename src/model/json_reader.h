#pragma once

#include <functional>
#include <initializer_list>
#include <string>
#include <string_view>
#include <vector>

#include <boost/json/value.hpp>

#include "common/status.h"

// The small toolkit the model's strict JSON readers share (instance_json.cc,
// network_config_json.cc). Internal to the model module.
namespace openimds::model::json_reader {

// JSON pointers (RFC 6901) for error messages: "~" -> "~0", "/" -> "~1".
std::string PointerToken(std::string_view key);
std::string Child(const std::string& at, std::string_view key);
std::string Child(const std::string& at, size_t index);

// InvalidArgument whose message starts with the pointer; the root is "/" (the
// empty pointer would make a message start with ": ").
common::Status Err(const std::string& at, std::string_view what);

// Reads one value found at pointer `at`.
using Reader = std::function<common::Status(const boost::json::value&, const std::string& at)>;
struct Field {
  std::string_view name;
  Reader read;
};

// Reads an object field by field, in document order, so the first offender in
// the text is the one reported; a key not in `fields` is "unknown field".
common::Status ReadObject(const boost::json::value& v, const std::string& at,
                          std::initializer_list<Field> fields);

// "expected string" / "expected integer" / "out of range" / "expected array".
Reader String(std::string& out);
common::Status IntValue(const boost::json::value& v, const std::string& at, int& out);
Reader Int(int& out);
Reader StringArray(std::vector<std::string>& out);

}  // namespace openimds::model::json_reader
