#pragma once

#include <linux/sockios.h>
#include <netinet/in.h>
#include <sys/ioctl.h>
#include <sys/socket.h>

namespace openimds::http {

// Sets the IP TTL / IPv6 hop limit of a connected socket's outgoing packets
// for one response (the IMDSv2 token PUT) and restores the previous values
// before a later response. Used by the server core and by the proxy on its
// guest-facing sockets. One per connection; not thread-safe.
class HopLimitGuard {
 public:
  // On a dual-stack socket a v4-mapped peer's packets use IP_TTL, so both
  // options are set when `is_v6`.
  void Apply(int fd, bool is_v6, int ttl) {
    if (!active_) {
      fd_ = fd;
      v6_ = is_v6;
      socklen_t len = sizeof(int);
      getsockopt(fd_, IPPROTO_IP, IP_TTL, &saved_v4_, &len);
      if (v6_) {
        len = sizeof(int);
        getsockopt(fd_, IPPROTO_IPV6, IPV6_UNICAST_HOPS, &saved_v6_, &len);
      }
    }
    setsockopt(fd_, IPPROTO_IP, IP_TTL, &ttl, sizeof(ttl));
    if (v6_) setsockopt(fd_, IPPROTO_IPV6, IPV6_UNICAST_HOPS, &ttl, sizeof(ttl));
    active_ = true;
  }

  // Puts the saved values back, but not while sent bytes are still
  // unacknowledged: a retransmission of the token response would leave with
  // the default TTL and cross the hop limit (seen in tests/netns/
  // test_hop_limit.py with a pipelined PUT+GET). Until the peer has
  // acknowledged everything the socket stays restrictive; call again before
  // each later response.
  bool active() const { return active_; }

  void Restore() {
    if (!active_) return;
    int unacked = 0;
    if (::ioctl(fd_, SIOCOUTQ, &unacked) == 0 && unacked > 0) return;
    setsockopt(fd_, IPPROTO_IP, IP_TTL, &saved_v4_, sizeof(saved_v4_));
    if (v6_) setsockopt(fd_, IPPROTO_IPV6, IPV6_UNICAST_HOPS, &saved_v6_, sizeof(saved_v6_));
    active_ = false;
  }

 private:
  int fd_ = -1;
  bool v6_ = false;
  int saved_v4_ = -1;
  int saved_v6_ = -1;
  bool active_ = false;
};

}  // namespace openimds::http
