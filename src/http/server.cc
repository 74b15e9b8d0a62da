// The server core's composition: listeners and workers built from the
// config, started, run and shut down in two phases. The pieces live beside
// it: request_parser (framing and limits), response_writer, listener (bind,
// admission, accept loops), worker (I/O thread, reaper, drain) and session
// (one connection).
#include "http/server.h"

#include <unistd.h>

#include <atomic>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <chrono>
#include <mutex>
#include <thread>

#include "http/listener.h"
#include "http/wire_format.h"
#include "http/worker.h"

namespace openimds::http {
namespace {

namespace asio = boost::asio;
using Clock = std::chrono::steady_clock;

}  // namespace

struct Server::Impl {
  ServerOptions options;
  common::MetricsRegistry& metrics;
  std::vector<std::unique_ptr<ListenerState>> listeners;
  std::vector<std::unique_ptr<Worker>> shared_workers;
  std::vector<std::unique_ptr<Worker>> dedicated_workers;  // one per dedicated listener
  ConnectionGate shared_gate;  // every shared listener's connections
  std::atomic<bool> draining{false};
  std::atomic<bool> started{false};
  std::mutex shutdown_mu;
  std::unique_ptr<std::thread> shutdown_thread;  // guarded by shutdown_mu

  Impl(ServerOptions o, common::MetricsRegistry& m)
      : options(o), metrics(m), shared_gate(o.max_connections) {}

  std::vector<Worker*> AllWorkers() {
    std::vector<Worker*> all;
    for (auto& w : shared_workers) all.push_back(w.get());
    for (auto& w : dedicated_workers) all.push_back(w.get());
    return all;
  }
};

Server::Server(ServerOptions options, std::vector<ListenerConfig> listeners,
               common::MetricsRegistry& metrics)
    : impl_(std::make_unique<Impl>(options, metrics)) {
  for (auto& cfg : listeners) {
    impl_->listeners.push_back(MakeListenerState(std::move(cfg), metrics, impl_->shared_gate));
  }
}

Server::~Server() {
  Shutdown();
  std::lock_guard<std::mutex> lock(impl_->shutdown_mu);
  if (impl_->shutdown_thread && impl_->shutdown_thread->joinable()) impl_->shutdown_thread->join();
}

common::Status Server::Start() {
  int n = impl_->options.threads;
  if (n <= 0) n = static_cast<int>(std::max(1u, std::thread::hardware_concurrency()));
  for (int i = 0; i < n; ++i) impl_->shared_workers.push_back(std::make_unique<Worker>());

  for (auto& ls : impl_->listeners) {
    if (ls->config.handler == nullptr) {
      return common::InvalidArgument("listener " + ls->config.endpoint + " has no handler");
    }
    std::vector<Worker*> targets;
    if (ls->config.dedicated_thread) {
      impl_->dedicated_workers.push_back(std::make_unique<Worker>());
      impl_->dedicated_workers.back()->background = ls->config.background;
      targets.push_back(impl_->dedicated_workers.back().get());
    } else {
      for (auto& w : impl_->shared_workers) targets.push_back(w.get());
    }
    if (!ls->config.tls_certificate_file.empty()) {
      if (ls->config.endpoint.rfind("unix:", 0) == 0) {
        return common::InvalidArgument("listener " + ls->config.endpoint +
                                       ": TLS is for TCP listeners");
      }
      auto ctx = MakeTlsContext(ls->config);
      if (!ctx.ok()) return ctx.status();
      ls->tls = std::move(*ctx);
    }
    if (ls->config.endpoint.rfind("unix:", 0) == 0) {
      ls->is_unix = true;
      ls->unix_path = ls->config.endpoint.substr(5);
      if (ls->unix_path.empty()) return common::InvalidArgument("empty unix socket path");
      // A unix socket: one acceptor, on the first worker.
      common::Status s = BindUnix(*ls, *targets.front());
      if (!s.ok()) return s;
    } else {
      auto ep = ParseTcpEndpoint(ls->config.endpoint);
      if (!ep.ok()) return ep.status();
      ls->tcp_endpoint = *ep;
      bool first = true;
      for (Worker* w : targets) {
        common::Status s = BindTcp(*ls, *w, first);
        if (!s.ok()) return s;
        first = false;
      }
    }
  }
  auto workers = impl_->AllWorkers();
  for (Worker* w : workers) {
    for (auto& [acc, ls] : w->tcp_acceptors) {
      if (ls->tls) {
        // TLS: async_accept (AcceptLoop), no raw-descriptor fast path.
        asio::co_spawn(w->ctx, AcceptLoop(*acc, *ls, *w, impl_->draining), asio::detached);
      } else {
        asio::co_spawn(w->ctx, TcpAcceptLoop(*acc, *ls, *w, impl_->draining), asio::detached);
      }
    }
    for (auto& [acc, ls] : w->unix_acceptors) {
      asio::co_spawn(w->ctx, AcceptLoop(*acc, *ls, *w, impl_->draining), asio::detached);
    }
  }
  for (Worker* w : workers) StartReaper(*w, impl_->draining);
  impl_->started = true;
  return common::Status::Ok();
}

std::vector<std::string> Server::BoundEndpoints() const {
  std::vector<std::string> out;
  for (const auto& ls : impl_->listeners) {
    if (ls->is_unix) {
      out.push_back("unix:" + ls->unix_path);
    } else if (ls->tcp_endpoint.address().is_v6()) {
      out.push_back("[" + ls->tcp_endpoint.address().to_string() + "]:" +
                    std::to_string(ls->tcp_endpoint.port()));
    } else {
      out.push_back(ls->tcp_endpoint.address().to_string() + ":" +
                    std::to_string(ls->tcp_endpoint.port()));
    }
  }
  return out;
}

void Server::Run() {
  auto workers = impl_->AllWorkers();
  for (size_t i = 1; i < workers.size(); ++i) RunOnOwnThread(*workers[i]);
  if (!workers.empty()) workers[0]->ctx.run();
  for (size_t i = 1; i < workers.size(); ++i) {
    if (workers[i]->thread.joinable()) workers[i]->thread.join();
  }
  for (auto& ls : impl_->listeners) {
    if (ls->is_unix) ::unlink(ls->unix_path.c_str());
  }
}

void Server::Shutdown() {
  if (impl_->draining.exchange(true)) return;
  if (!impl_->started) return;
  auto workers = impl_->AllWorkers();
  // Phase 1: stop accepting; idle connections are closed by each reaper on
  // its next tick; busy ones finish their request with Connection: close.
  for (Worker* w : workers) StopAccepting(*w);
  // Phase 2 after the grace period, or as soon as every connection is gone.
  std::lock_guard<std::mutex> lock(impl_->shutdown_mu);
  impl_->shutdown_thread = std::make_unique<std::thread>([this, workers] {
    const auto until = Clock::now() + impl_->options.shutdown_grace;
    for (;;) {
      int active = 0;
      for (Worker* w : workers) active += w->active.load();
      if (active == 0 || Clock::now() >= until) break;
      std::this_thread::sleep_for(std::chrono::milliseconds(20));
    }
    for (Worker* w : workers) CloseAll(*w);
    // Let the closes run, then stop the loops.
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
    for (Worker* w : workers) w->ctx.stop();
  });
}

}  // namespace openimds::http
