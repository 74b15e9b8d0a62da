// Response serialisation into one buffer: headers and body leave in one
// write (with TCP_NODELAY), avoiding the Nagle/delayed-ACK stall clients.md
// describes.
#include "http/response_writer.h"

#include <sys/socket.h>

#include <cerrno>
#include <charconv>
#include <cstdint>
#include <cstring>

#include "http/wire_format.h"

namespace openimds::http {

bool SafeHeaderText(std::string_view s) {
  for (char c : s) {
    if (c == '\r' || c == '\n' || c == '\0') return false;
  }
  return true;
}

// Appends: pipelined responses may be coalesced into one write. The status
// line and fixed headers are built in a stack buffer and appended at once
// (a dozen std::string::append calls were 12% of the hot path's
// instructions); extra headers, rare, are appended one by one.
void Serialize(const common::Response& r, int version, bool keep_alive, std::string& out) {
  const bool has_body = r.status != 204 && r.status != 304;
  char head[256];
  char* p = head;
  const auto put = [&p](std::string_view v) {
    std::memcpy(p, v.data(), v.size());
    p += v.size();
  };
  const auto put_number = [&p](uint64_t n) { p = std::to_chars(p, p + 20, n).ptr; };
  // Fixed pieces: 9 + 3 + 1 + reason (<= 40) + 8 + date (29) + 16 + type
  // (bounded below) + 18 + 20 + 24 + 2 < 256 for a content type <= 64.
  const std::string_view reason = ReasonPhrase(r.status);
  const bool type_fits = r.content_type.size() <= 64 && reason.size() <= 40;
  if (!type_fits) {
    // Never seen in practice; keep the general path correct anyway.
    out.append(version == 10 ? "HTTP/1.0 " : "HTTP/1.1 ");
    AppendNumber(out, static_cast<size_t>(r.status));
    out += ' ';
    out.append(reason);
    out.append("\r\nDate: ");
    out.append(HttpDate());
    if (has_body) {
      out.append("\r\nContent-Type: ");
      out.append(r.content_type);
      out.append("\r\nContent-Length: ");
      AppendNumber(out, r.body.size());
    }
  } else {
    put(version == 10 ? std::string_view("HTTP/1.0 ") : std::string_view("HTTP/1.1 "));
    put_number(static_cast<uint64_t>(r.status));
    *p++ = ' ';
    put(reason);
    put("\r\nDate: ");
    put(HttpDate());
    if (has_body) {
      put("\r\nContent-Type: ");
      put(r.content_type);
      put("\r\nContent-Length: ");
      put_number(r.body.size());
    }
    out.append(head, static_cast<size_t>(p - head));
  }
  for (const auto& [name, value] : r.headers) {
    out.append("\r\n");
    out.append(name);
    out.append(": ");
    out.append(value);
  }
  if (!keep_alive) {
    out.append("\r\nConnection: close\r\n\r\n");
  } else if (version == 10) {
    out.append("\r\nConnection: keep-alive\r\n\r\n");
  } else {
    out.append("\r\n\r\n");
  }
  if (!r.head && has_body) out.append(r.body);
}

// MSG_DONTWAIT: a socket not yet used by asio may still be in blocking mode
// (the unix listener's).
bool SendNow(int fd, std::string_view& data, int extra_flags) {
  while (!data.empty()) {
    const ssize_t n =
        ::send(fd, data.data(), data.size(), MSG_NOSIGNAL | MSG_DONTWAIT | extra_flags);
    if (n > 0) {
      data.remove_prefix(static_cast<size_t>(n));
    } else if (n < 0 && errno == EINTR) {
      continue;
    } else {
      return n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK);
    }
  }
  return true;
}

void SimpleError(common::Response& r, int status, std::string_view message) {
  r.Clear();
  r.status = status;
  r.content_type = "text/plain";
  r.body.assign(message);
  r.body += '\n';
  r.close = true;
}

}  // namespace openimds::http
