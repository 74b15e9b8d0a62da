#include "flavour/ec2/ec2_errors.h"

#include <charconv>

namespace openimds::flavour::ec2 {

std::string_view ReasonPhrase(int http_status) {
  switch (http_status) {
    case 400: return "Bad Request";
    case 401: return "Unauthorized";
    case 403: return "Forbidden";
    case 404: return "Not Found";
    case 405: return "Method Not Allowed";
    case 409: return "Conflict";
    case 412: return "Precondition Failed";
    case 413: return "Payload Too Large";
    case 429: return "Too Many Requests";
    case 500: return "Internal Server Error";
    case 503: return "Service Unavailable";
    case 507: return "Insufficient Storage";
  }
  return "Error";
}

void AppendErrorPage(int http_status, std::string& out) {
  char code[8];
  const auto [end, ec] = std::to_chars(code, code + sizeof(code), http_status);
  const std::string_view code_text(code, ec == std::errc() ? end - code : 0);
  const std::string_view reason = ReasonPhrase(http_status);
  auto title = [&] {
    out += code_text;
    out += " - ";
    out += reason;
  };
  out +=
      "<?xml version=\"1.0\" encoding=\"iso-8859-1\"?>\n"
      "<!DOCTYPE html PUBLIC \"-//W3C//DTD XHTML 1.0 Transitional//EN\"\n"
      "         \"http://www.w3.org/TR/xhtml1/DTD/xhtml1-transitional.dtd\">\n"
      "<html xmlns=\"http://www.w3.org/1999/xhtml\" xml:lang=\"en\" lang=\"en\">\n"
      " <head>\n"
      "  <title>";
  title();
  out +=
      "</title>\n"
      " </head>\n"
      " <body>\n"
      "  <h1>";
  title();
  out +=
      "</h1>\n"
      " </body>\n"
      "</html>\n";
}

}  // namespace openimds::flavour::ec2
