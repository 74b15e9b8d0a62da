// An I/O thread of the server core: spare connection buffers, the deadline
// reaper, and the drain.
#include "http/worker.h"

#include <boost/asio/post.hpp>

#include "common/log.h"
#include "common/thread_priority.h"

namespace openimds::http {
namespace {

// Spare connection buffers are kept per worker at most, and only while their
// storage stays small: one large upload must not pin its memory for the life
// of the process.
constexpr size_t kSpareStates = 256;
constexpr size_t kSpareStateBytes = 64 * 1024;

}  // namespace

std::unique_ptr<SessionState> Worker::TakeState() {
  if (spare_states.empty()) {
    auto st = std::make_unique<SessionState>();
    st->parsed.arena.reserve(1024);
    st->parsed.fields.reserve(16);
    st->req.headers.reserve(16);
    st->out.reserve(1024);
    return st;
  }
  auto st = std::move(spare_states.back());
  spare_states.pop_back();
  return st;
}

void Worker::ReturnState(std::unique_ptr<SessionState> st) {
  if (spare_states.size() >= kSpareStates || st->parsed.arena.capacity() > kSpareStateBytes ||
      st->parsed.body.capacity() > kSpareStateBytes || st->out.capacity() > kSpareStateBytes ||
      st->resp.body.capacity() > kSpareStateBytes || st->buffer.capacity() > kSpareStateBytes) {
    return;
  }
  st->parsed.Clear();
  auto headers = std::move(st->req.headers);
  headers.clear();
  st->req = common::Request{};
  st->req.headers = std::move(headers);
  st->resp.Clear();
  st->out.clear();
  st->buffer.clear();
  spare_states.push_back(std::move(st));
}

void StartReaper(Worker& w, const std::atomic<bool>& draining) {
  // One coarse timer per thread enforces every deadline of that thread's
  // connections: the hot path only stores a time point, no timer per request.
  w.reaper = std::make_unique<boost::asio::steady_timer>(w.ctx);
  auto tick = std::make_shared<std::function<void()>>();
  *tick = [&draining, &w, tick]() {
    w.reaper->expires_after(std::chrono::milliseconds(250));
    w.reaper->async_wait([&draining, &w, tick](boost::system::error_code ec) {
      if (ec) return;
      const auto now = std::chrono::steady_clock::now();
      const bool drain = draining.load(std::memory_order_relaxed);
      // A burst of refusals whose lines were held back gets its summary
      // even if nothing is refused after it.
      common::FlushRefusalSummaries();
      for (auto& s : w.sessions) {
        if (*s.deadline <= now) {
          if (!*s.idle) {
            s.timeouts->Inc();
            common::LogRefusal("http", "closing connection from " + s.peer.ToString() + " on " +
                                           *s.endpoint + ": request not complete in time");
          }
          s.close();
        } else if (drain && *s.idle) {
          s.close();
        }
      }
      (*tick)();
    });
  };
  (*tick)();
}

void RunOnOwnThread(Worker& w) {
  w.thread = std::thread([&w] {
    if (w.background) common::LowerCurrentThreadPriority();
    w.ctx.run();
  });
}

void StopAccepting(Worker& w) {
  boost::asio::post(w.ctx, [&w] {
    boost::system::error_code ignored;
    for (auto& a : w.tcp_acceptors) a.first->close(ignored);
    for (auto& a : w.unix_acceptors) a.first->close(ignored);
    for (auto& s : w.sessions) {
      if (*s.idle) s.close();
    }
  });
}

void CloseAll(Worker& w) {
  boost::asio::post(w.ctx, [&w] {
    for (auto& s : w.sessions) s.close();
    if (w.reaper) w.reaper->cancel();
  });
}

}  // namespace openimds::http
