#pragma once

// What bench/scale_gen.cc (writes the fleet) and bench/scale_client.cc (loads
// it) agree on, so that the client can address any generated instance from its
// index alone, without reading the 2 GB file back.

#include <cstdint>
#include <cstdio>
#include <string>

namespace openimds::bench {

// Tenant networks the fleet is spread over, round robin: instance i lives in
// network "tenant-<i % kNetworks>" (two digits).
inline constexpr int kNetworks = 20;

// Probe instances: network "probe", NIC address 127.0.0.<kProbeFirstHost + k>,
// id "probe-<k>", instance_metadata_tags enabled, tag kProbeTag present. The
// only instances a loopback client can call as (the guest is identified by its
// source address, and only 127/8 can be bound on loopback).
inline constexpr const char* kProbeNetwork = "probe";
inline constexpr int kProbeFirstHost = 2;
inline constexpr const char* kProbeTag = "seq";

// SplitMix64: a bijection on 64-bit values, so distinct indices give distinct,
// random-looking ids.
inline uint64_t Mix64(uint64_t x) {
  x += 0x9e3779b97f4a7c15ULL;
  x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ULL;
  x = (x ^ (x >> 27)) * 0x94d049bb133111ebULL;
  return x ^ (x >> 31);
}

// "i-%017x" of a 64-bit value: unique per index.
inline std::string InstanceId(uint64_t index) {
  char buf[24];
  std::snprintf(buf, sizeof(buf), "i-%017llx", static_cast<unsigned long long>(Mix64(index)));
  return buf;
}

inline std::string ProbeId(int k) { return "probe-" + std::to_string(k); }

inline std::string ProbeAddress(int k) { return "127.0.0." + std::to_string(kProbeFirstHost + k); }

}  // namespace openimds::bench
