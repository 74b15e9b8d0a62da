#pragma once

// One connection of the server core from accept to close: reading and
// parsing requests (RequestParser), admission on the header, 100-continue,
// the handler call (and a deferred answer's wait), coalescing of pipelined
// responses, the hop limit per write, deadlines (kept for the worker's
// reaper), refusals (400/413/431, counted and logged) and the lingering
// close after one. Internal to the http module.

#include <atomic>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/local/stream_protocol.hpp>

#include "http/listener.h"
#include "http/worker.h"

namespace openimds::http {

// Starts serving the connection `socket` from `peer` on listener `ls`, on
// worker `w`'s thread (call it there), until the connection closes. The
// connection has been admitted at ls's gate and is released there at the
// end; it counts in w.active while it lives. Plain TCP: `raw_fd` is the
// accepted, non-blocking descriptor, served directly; `socket` (unopened)
// adopts it only when the connection must wait. TLS: the handshake comes
// first, under the header deadline.
void StartSession(boost::asio::ip::tcp::socket socket, const boost::asio::ip::tcp::endpoint& peer,
                  ListenerState& ls, Worker& w, const std::atomic<bool>& draining, int raw_fd);
void StartSession(TlsSocket socket, const boost::asio::ip::tcp::endpoint& peer,
                  ListenerState& ls, Worker& w, const std::atomic<bool>& draining);
void StartSession(boost::asio::local::stream_protocol::socket socket,
                  const boost::asio::local::stream_protocol::endpoint& peer, ListenerState& ls,
                  Worker& w, const std::atomic<bool>& draining);

}  // namespace openimds::http
