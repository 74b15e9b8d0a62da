#include "flavour/ec2/ec2_json.h"

namespace openimds::flavour::ec2 {

void AppendJsonString(std::string_view value, std::string& out) {
  static constexpr char kHex[] = "0123456789abcdef";
  out += '"';
  for (char c : value) {
    const auto u = static_cast<unsigned char>(c);
    switch (c) {
      case '"': out += "\\\""; break;
      case '\\': out += "\\\\"; break;
      case '\n': out += "\\n"; break;
      case '\r': out += "\\r"; break;
      case '\t': out += "\\t"; break;
      case '\b': out += "\\b"; break;
      case '\f': out += "\\f"; break;
      default:
        if (u < 0x20) {
          out += "\\u00";
          out += kHex[u >> 4];
          out += kHex[u & 0xf];
        } else {
          out += c;
        }
    }
  }
  out += '"';
}

void Ec2JsonObject::Key(std::string_view key) {
  out_ += empty_ ? "\n  " : ",\n  ";
  empty_ = false;
  AppendJsonString(key, out_);
  out_ += " : ";
}

Ec2JsonObject& Ec2JsonObject::String(std::string_view key, std::string_view value) {
  Key(key);
  AppendJsonString(value, out_);
  return *this;
}

Ec2JsonObject& Ec2JsonObject::Null(std::string_view key) {
  Key(key);
  out_ += "null";
  return *this;
}

Ec2JsonObject& Ec2JsonObject::StringOrNull(std::string_view key, std::string_view value) {
  return value.empty() ? Null(key) : String(key, value);
}

Ec2JsonObject& Ec2JsonObject::StringArrayOrNull(std::string_view key,
                                                const model::StrList& values) {
  if (values.empty()) return Null(key);
  Key(key);
  out_ += "[ ";
  for (size_t i = 0; i < values.size(); ++i) {
    if (i > 0) out_ += ", ";
    AppendJsonString(values[i], out_);
  }
  out_ += " ]";
  return *this;
}

void Ec2JsonObject::Close() { out_ += empty_ ? "}" : "\n}"; }

}  // namespace openimds::flavour::ec2
