#pragma once

#include <cstdint>
#include <map>
#include <string>
#include <string_view>
#include <vector>

#include <boost/json/fwd.hpp>

#include "model/instance.h"

// Compact JSON text written straight into a std::string, byte for byte what
// boost::json::serialize writes for the same tree (same escapes: \" \\ \b \f
// \n \r \t, \u00xx in lower-case hex for other control characters, every
// other byte as is). ToJsonText uses it instead of building a
// boost::json::value first. Internal to the model module.
namespace openimds::model::json_writer {

class Writer {
 public:
  explicit Writer(std::string& out) : out_(out) {}

  void BeginObject();
  void EndObject();
  void BeginArray();
  void EndArray();
  // An object member's key; the next call writes its value.
  void Key(std::string_view key);
  void String(std::string_view s);
  void Int(int64_t n);
  void Bool(bool b);
  // A value already serialised as compact JSON, written as is.
  void Raw(std::string_view json);
  // A string holding the base64 (with padding) of `bytes`: what
  // String(common::Base64Encode(bytes)) writes, without the copy.
  void Base64(std::string_view bytes);

  // The members ToJson writes with PutString/PutArray/PutMap: omitted when empty.
  void PutString(std::string_view key, std::string_view value);
  template <typename List>  // std::vector<std::string> or StrList
  void PutArray(std::string_view key, const List& values) {
    if (values.empty()) return;
    Key(key);
    BeginArray();
    for (const auto& v : values) String(v);
    EndArray();
  }
  void PutMap(std::string_view key, const StringMap& m);

 private:
  void Separate() {
    if (need_comma_) out_ += ',';
  }
  void Quoted(std::string_view s);

  std::string& out_;
  bool need_comma_ = false;  // a value was written in the current container
};

// The same members into a boost::json::object, for ToJson: each omitted when
// empty.
void PutString(boost::json::object& o, std::string_view key, std::string_view value);
void PutArray(boost::json::object& o, std::string_view key, const StrList& values);
void PutArray(boost::json::object& o, std::string_view key, const std::vector<std::string>& values);
void PutMap(boost::json::object& o, std::string_view key, const StringMap& m);

}  // namespace openimds::model::json_writer
