#include "proxy/wire.h"

#include <charconv>
#include <ctime>

#include "common/http_message.h"

namespace openimds::proxy {

bool ParsedMessage::Find(std::string_view name, std::string_view& value) const {
  for (const auto& [n, v] : fields) {
    if (common::EqualsIgnoreCase(View(n), name)) {
      value = View(v);
      return true;
    }
  }
  return false;
}

int ParsedMessage::Count(std::string_view name) const {
  int n = 0;
  for (const auto& f : fields) {
    if (common::EqualsIgnoreCase(View(f.first), name)) ++n;
  }
  return n;
}

template <bool isRequest>
void MessageParser<isRequest>::on_field_impl(boost::beast::http::field f, sv name, sv value,
                                             ec_t&) {
  if constexpr (isRequest) {
    if (f == boost::beast::http::field::expect &&
        common::EqualsIgnoreCase(SV(value), "100-continue")) {
      out_.expect_continue = true;
    }
  }
  Span n = out_.Append(SV(name));
  Span v = out_.Append(SV(value));
  out_.fields.emplace_back(n, v);
  if constexpr (isRequest) {
    if (f == boost::beast::http::field::transfer_encoding && out_.transfer_encodings++ == 0) {
      out_.transfer_encoding = v;
    }
  }
}

template class MessageParser<true>;
template class MessageParser<false>;




bool SafeHeaderText(std::string_view s) {
  for (char c : s) {
    if (c == '\r' || c == '\n' || c == '\0') return false;
  }
  return true;
}

bool StartsWithIgnoreCase(std::string_view s, std::string_view prefix) {
  return s.size() >= prefix.size() && common::EqualsIgnoreCase(s.substr(0, prefix.size()), prefix);
}

}  // namespace openimds::proxy
