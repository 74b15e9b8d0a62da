#include "admin/url_parts.h"

#include "common/encoding.h"

namespace openimds::admin {

std::optional<std::string> PercentDecode(std::string_view text, bool plus_is_space) {
  std::string out;
  out.reserve(text.size());
  for (size_t i = 0; i < text.size(); ++i) {
    const char c = text[i];
    if (c == '+' && plus_is_space) {
      out.push_back(' ');
    } else if (c == '%') {
      if (i + 2 >= text.size()) return std::nullopt;
      const int hi = common::HexValue(text[i + 1]);
      const int lo = common::HexValue(text[i + 2]);
      if (hi < 0 || lo < 0) return std::nullopt;
      const char decoded = static_cast<char>(hi * 16 + lo);
      // A NUL would truncate the value wherever it later meets a C API.
      if (decoded == '\0') return std::nullopt;
      out.push_back(decoded);
      i += 2;
    } else {
      out.push_back(c);
    }
  }
  return out;
}

common::Result<std::vector<QueryParam>> ParseQuery(std::string_view query) {
  std::vector<QueryParam> params;
  while (!query.empty()) {
    const size_t amp = query.find('&');
    std::string_view piece = query.substr(0, amp);
    query = amp == std::string_view::npos ? std::string_view() : query.substr(amp + 1);
    if (piece.empty()) continue;
    const size_t eq = piece.find('=');
    std::string_view raw_name = piece.substr(0, eq);
    std::string_view raw_value =
        eq == std::string_view::npos ? std::string_view() : piece.substr(eq + 1);
    auto name = PercentDecode(raw_name, true);
    if (!name) return common::InvalidArgument("query: bad percent-escape in a parameter name");
    auto value = PercentDecode(raw_value, true);
    if (!value) {
      return common::InvalidArgument("query parameter \"" + *name + "\": bad percent-escape");
    }
    params.emplace_back(std::move(*name), std::move(*value));
  }
  return params;
}

}  // namespace openimds::admin
