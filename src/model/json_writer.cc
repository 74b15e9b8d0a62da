#include "model/json_writer.h"

#include <charconv>

#include <boost/json.hpp>

#include "model/base64.h"

namespace openimds::model::json_writer {

void Writer::BeginObject() {
  Separate();
  out_ += '{';
  need_comma_ = false;
}

void Writer::EndObject() {
  out_ += '}';
  need_comma_ = true;
}

void Writer::BeginArray() {
  Separate();
  out_ += '[';
  need_comma_ = false;
}

void Writer::EndArray() {
  out_ += ']';
  need_comma_ = true;
}

void Writer::Key(std::string_view key) {
  Separate();
  Quoted(key);
  out_ += ':';
  need_comma_ = false;
}

void Writer::String(std::string_view s) {
  Separate();
  Quoted(s);
  need_comma_ = true;
}

void Writer::Int(int64_t n) {
  Separate();
  char buf[24];
  const auto r = std::to_chars(buf, buf + sizeof(buf), n);
  out_.append(buf, r.ptr);
  need_comma_ = true;
}

void Writer::Bool(bool b) {
  Separate();
  out_ += b ? "true" : "false";
  need_comma_ = true;
}

void Writer::Raw(std::string_view json) {
  Separate();
  out_ += json;
  need_comma_ = true;
}

void Writer::Base64(std::string_view bytes) {
  // The base64 alphabet needs no escaping.
  Separate();
  out_ += '"';
  AppendBase64(bytes, out_);
  out_ += '"';
  need_comma_ = true;
}

void Writer::PutString(std::string_view key, std::string_view value) {
  if (value.empty()) return;
  Key(key);
  String(value);
}

void Writer::PutMap(std::string_view key, const StringMap& m) {
  if (m.empty()) return;
  Key(key);
  BeginObject();
  for (const auto& [k, v] : m) {
    Key(k);
    String(v);
  }
  EndObject();
}

// Half of ToJsonText's time is spent here. Aligned to a cache line, so that
// where the linker places it does not change the writer's speed (an
// unrelated function added elsewhere in the model cost ToJsonText 15%).
[[gnu::aligned(64)]] void Writer::Quoted(std::string_view s) {
  // boost::json's serializer table: these bytes get a short escape, the other
  // control characters \u00xx, everything else (UTF-8 included) is copied.
  static constexpr char kHex[] = "0123456789abcdef";
  out_ += '"';
  size_t run = 0;  // start of the pending run of bytes copied as is
  for (size_t i = 0; i < s.size(); ++i) {
    const auto c = static_cast<unsigned char>(s[i]);
    if (c >= 0x20 && c != '"' && c != '\\') continue;
    out_.append(s.data() + run, i - run);
    run = i + 1;
    char escape = 0;
    switch (c) {
      case '"': escape = '"'; break;
      case '\\': escape = '\\'; break;
      case '\b': escape = 'b'; break;
      case '\f': escape = 'f'; break;
      case '\n': escape = 'n'; break;
      case '\r': escape = 'r'; break;
      case '\t': escape = 't'; break;
      default: break;
    }
    if (escape != 0) {
      out_ += '\\';
      out_ += escape;
    } else {
      const char u[6] = {'\\', 'u', '0', '0', kHex[c >> 4], kHex[c & 15]};
      out_.append(u, sizeof(u));
    }
  }
  out_.append(s.data() + run, s.size() - run);
  out_ += '"';
}

namespace {

template <typename List>
void PutList(boost::json::object& o, std::string_view key, const List& values) {
  if (values.empty()) return;
  boost::json::array a;
  a.reserve(values.size());
  for (const auto& v : values) a.emplace_back(std::string_view(v));
  o[key] = std::move(a);
}

}  // namespace

void PutString(boost::json::object& o, std::string_view key, std::string_view value) {
  if (!value.empty()) o[key] = value;
}

void PutArray(boost::json::object& o, std::string_view key, const StrList& values) {
  PutList(o, key, values);
}

void PutArray(boost::json::object& o, std::string_view key,
              const std::vector<std::string>& values) {
  PutList(o, key, values);
}

void PutMap(boost::json::object& o, std::string_view key, const StringMap& m) {
  if (m.empty()) return;
  boost::json::object out;
  for (const auto& [k, v] : m) out[k.view()] = v.view();
  o[key] = std::move(out);
}

}  // namespace openimds::model::json_writer
