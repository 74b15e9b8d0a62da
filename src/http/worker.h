#pragma once

// One I/O thread of the server core: its io_context, the connections it
// owns, the buffers of closed connections kept for new ones, the one coarse
// timer (the reaper) that enforces every deadline of its connections, and
// its part of a graceful shutdown (drain). Internal to the http module.

#include <atomic>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/local/stream_protocol.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/beast/core/flat_buffer.hpp>
#include <chrono>
#include <functional>
#include <list>
#include <memory>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "common/http_message.h"
#include "common/ip_address.h"
#include "common/metrics.h"
#include "http/request_parser.h"

namespace openimds::http {

struct ListenerState;

// A connection's buffers. A worker keeps those of closed connections and
// hands them to new ones, so a connection per request (cloud-init) does not
// pay a dozen malloc/free pairs for its request, parse and response storage.
struct SessionState {
  ParsedRequest parsed;
  common::Request req;
  common::Response resp;
  std::string out;
  boost::beast::flat_buffer buffer;
};

// Everything in here is touched only from the worker's own thread, except
// through asio::post (and `active`, which is atomic).
struct Worker {
  // One thread runs this context and every socket and acceptor on it is
  // touched only from that thread (other threads reach it through post(),
  // which keeps the scheduler's lock), so the reactor's per-descriptor
  // locking is pure overhead: UNSAFE_IO turns just that off (callgrind:
  // pthread_mutex_lock/unlock were ~4.5% of the server's instructions).
  boost::asio::io_context ctx{BOOST_ASIO_CONCURRENCY_HINT_UNSAFE_IO};
  std::thread thread;
  bool background = false;  // a dedicated worker of a ListenerConfig::background listener

  // What the reaper and the drain need of one open connection.
  struct SessionHandle {
    std::function<void()> close;
    bool* idle;
    std::chrono::steady_clock::time_point* deadline;
    common::Counter* timeouts;  // counted here, before the close is visible to the peer
    const std::string* endpoint;
    common::IpAddress peer;  // formatted only when a line is logged
  };
  std::list<SessionHandle> sessions;  // owned by this thread
  std::vector<std::unique_ptr<SessionState>> spare_states;

  // A connection's buffers: a spare one when there is, else a new one.
  std::unique_ptr<SessionState> TakeState();
  // Keeps `st` for a later connection, cleared, unless enough are kept or
  // it grew large.
  void ReturnState(std::unique_ptr<SessionState> st);

  std::unique_ptr<boost::asio::steady_timer> reaper;
  // Each acceptor with the listener it serves.
  std::vector<std::pair<std::unique_ptr<boost::asio::ip::tcp::acceptor>, ListenerState*>>
      tcp_acceptors;
  std::vector<
      std::pair<std::unique_ptr<boost::asio::local::stream_protocol::acceptor>, ListenerState*>>
      unix_acceptors;
  std::atomic<int> active{0};  // open connections
};

// Starts the worker's reaper: every 250 ms it closes each connection past
// its deadline (counting and logging the ones that were inside a request)
// and, once `draining`, each idle one. Runs until the reaper is cancelled.
void StartReaper(Worker& w, const std::atomic<bool>& draining);

// Runs the worker's io_context on a thread of its own (below normal priority
// for a background worker) until it is stopped.
void RunOnOwnThread(Worker& w);

// Drain, phase 1 (posted to the worker's thread): stop accepting and close
// idle connections; busy ones finish their request with Connection: close.
void StopAccepting(Worker& w);

// Drain, phase 2 (posted): close every connection and stop the reaper.
void CloseAll(Worker& w);

}  // namespace openimds::http
