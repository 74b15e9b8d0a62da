#pragma once

#include <boost/asio/ip/address.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <cstdint>
#include <string>
#include <string_view>

#include "common/ip_address.h"
#include "common/result.h"

namespace openimds::http {

// Small pieces of HTTP/1.1 wire formatting shared by the server core and the
// proxy. All thread-safe.

// "OK", "Service Unavailable", ...; "Unknown" for codes without a phrase here.
std::string_view ReasonPhrase(int status);

// "Wed, 25 Nov 2026 13:31:53 GMT", formatted at most once a second per thread.
std::string_view HttpDate();

// Appends the decimal digits of `n`.
void AppendNumber(std::string& out, uint64_t n);

// "127.0.0.1:8169", "[::1]:80", or an IPv6 link-local address with its
// interface, "[fe80::a9fe:a9fe%eth0]:80" (name or index, resolved in the
// calling thread's network namespace; required for fe80::/10, refused for
// any other address). InvalidArgument naming the text otherwise.
common::Result<boost::asio::ip::tcp::endpoint> ParseTcpEndpoint(std::string_view text);

// An Asio address as a common::IpAddress (v4-mapped IPv6 becomes IPv4).
common::IpAddress ToIpAddress(const boost::asio::ip::address& a);

// True iff a request may be framed by these Transfer-Encoding headers:
// `count` of them, the first with `value`. Only none, or exactly one that
// names just "chunked" (any case, surrounding spaces), is accepted. Any other
// coding ("xchunked", "chunked, identity", "gzip, chunked") is refused, not
// guessed at: a server and a proxy that frame one body differently are how
// a second request is smuggled inside a first.
bool AcceptableTransferEncoding(int count, std::string_view value);

}  // namespace openimds::http
