#pragma once

// A blocking raw-socket HTTP client for the http core's tests: bytes exactly
// as written (pipelining, partial requests), responses read by Content-Length.

#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <string>

namespace openimds::http::raw_client {

// A connection to 127.0.0.1:port with a 5 s receive timeout; `rcvbuf` > 0
// sets SO_RCVBUF first (a small window makes the server's writes block).
inline int ConnectLoopback(int port, int rcvbuf = 0) {
  int fd = socket(AF_INET, SOCK_STREAM, 0);
  if (rcvbuf > 0) setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &rcvbuf, sizeof(rcvbuf));
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_port = htons(static_cast<uint16_t>(port));
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  EXPECT_EQ(connect(fd, reinterpret_cast<sockaddr*>(&a), sizeof(a)), 0);
  timeval tv{5, 0};
  setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
  return fd;
}

inline void SendAll(int fd, const std::string& s) {
  ASSERT_EQ(::send(fd, s.data(), s.size(), MSG_NOSIGNAL), static_cast<ssize_t>(s.size()));
}

// Reads until `n` complete responses (by Content-Length) or EOF/timeout.
inline std::string ReadResponses(int fd, int n) {
  std::string data;
  char buf[4096];
  for (;;) {
    int complete = 0;
    size_t pos = 0;
    while (true) {
      size_t hdr_end = data.find("\r\n\r\n", pos);
      if (hdr_end == std::string::npos) break;
      size_t cl = data.find("Content-Length: ", pos);
      size_t len = 0;
      if (cl != std::string::npos && cl < hdr_end) len = std::stoul(data.substr(cl + 16));
      if (data.size() < hdr_end + 4 + len) break;
      pos = hdr_end + 4 + len;
      ++complete;
    }
    if (complete >= n) return data;
    ssize_t r = recv(fd, buf, sizeof(buf), 0);
    if (r <= 0) return data;
    data.append(buf, static_cast<size_t>(r));
  }
}

}  // namespace openimds::http::raw_client
