#include "flavour/openstack/python_json.h"

#include <boost/json.hpp>
#include <cstdint>
#include <cstdio>

namespace openimds::flavour::openstack {
namespace {

void AppendU(uint32_t unit, std::string& out) {
  char buf[8];
  std::snprintf(buf, sizeof(buf), "\\u%04x", unit);
  out.append(buf);
}

// Boost.JSON holds valid UTF-8 only (the model validates its strings), so
// decoding need not guard against malformed sequences beyond bounds.
void AppendString(std::string_view s, std::string& out) {
  out.push_back('"');
  for (size_t i = 0; i < s.size();) {
    const auto c = static_cast<unsigned char>(s[i]);
    if (c < 0x80) {
      switch (c) {
        case '"': out.append("\\\""); break;
        case '\\': out.append("\\\\"); break;
        case '\n': out.append("\\n"); break;
        case '\r': out.append("\\r"); break;
        case '\t': out.append("\\t"); break;
        case '\b': out.append("\\b"); break;
        case '\f': out.append("\\f"); break;
        default:
          if (c < 0x20 || c == 0x7f) {
            if (c == 0x7f) {
              out.push_back(static_cast<char>(c));  // Python leaves DEL as is
            } else {
              AppendU(c, out);
            }
          } else {
            out.push_back(static_cast<char>(c));
          }
      }
      ++i;
      continue;
    }
    size_t len = (c & 0xe0) == 0xc0 ? 2 : (c & 0xf0) == 0xe0 ? 3 : 4;
    if (i + len > s.size()) len = s.size() - i;
    uint32_t cp = len == 2 ? (c & 0x1f) : len == 3 ? (c & 0x0f) : (c & 0x07);
    for (size_t k = 1; k < len; ++k) cp = (cp << 6) | (static_cast<unsigned char>(s[i + k]) & 0x3f);
    if (cp >= 0x10000) {
      cp -= 0x10000;
      AppendU(0xd800 + (cp >> 10), out);
      AppendU(0xdc00 + (cp & 0x3ff), out);
    } else {
      AppendU(cp, out);
    }
    i += len;
  }
  out.push_back('"');
}

}  // namespace

void AppendPythonJson(const boost::json::value& v, std::string& out) {
  switch (v.kind()) {
    case boost::json::kind::null: out.append("null"); break;
    case boost::json::kind::bool_: out.append(v.get_bool() ? "true" : "false"); break;
    case boost::json::kind::int64: out.append(std::to_string(v.get_int64())); break;
    case boost::json::kind::uint64: out.append(std::to_string(v.get_uint64())); break;
    case boost::json::kind::double_: out.append(boost::json::serialize(v)); break;
    case boost::json::kind::string: AppendString(v.get_string(), out); break;
    case boost::json::kind::array: {
      out.push_back('[');
      bool first = true;
      for (const auto& e : v.get_array()) {
        if (!first) out.append(", ");
        first = false;
        AppendPythonJson(e, out);
      }
      out.push_back(']');
      break;
    }
    case boost::json::kind::object: {
      out.push_back('{');
      bool first = true;
      for (const auto& m : v.get_object()) {
        if (!first) out.append(", ");
        first = false;
        AppendString(m.key(), out);
        out.append(": ");
        AppendPythonJson(m.value(), out);
      }
      out.push_back('}');
      break;
    }
  }
}

}  // namespace openimds::flavour::openstack
