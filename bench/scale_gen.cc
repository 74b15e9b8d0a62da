// Fleet generator for bench/scale.sh: writes N realistic instance records as
// NDJSON (docs/instance.md), about 2 KiB each, 1 KiB of it user-data.
//
//   scale_gen fleet N FILE    N records, instance i in network tenant-<i % 20>
//   scale_gen probes P FILE   P probe records (network "probe", 127.0.0.x)
//
// Deterministic: the same N gives the same bytes. Ids, networks and probe
// addresses follow bench/scale_fleet.h, which bench/scale_client.cc shares.
// Each tenant network holds its instances in /24 subnets of 250 hosts
// (10.a.b.4 .. 10.a.b.253), so addresses are unique per network and the same
// address recurs across networks, as in a real multi-tenant fleet.
#include <cinttypes>
#include <cstdarg>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <ctime>
#include <string>

#include "scale_fleet.h"

namespace {

using openimds::bench::InstanceId;
using openimds::bench::kNetworks;
using openimds::bench::Mix64;

constexpr char kB64[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
constexpr size_t kUserDataBytes = 768;  // base64: 1024 characters

// xorshift64*: per-record stream, seeded from the record index.
struct Rng {
  uint64_t s;
  uint64_t Next() {
    s ^= s >> 12;
    s ^= s << 25;
    s ^= s >> 27;
    return s * 0x2545f4914f6cdd1dULL;
  }
};

const char* const kRegions[] = {"us-east-1", "eu-west-1", "ap-southeast-2", "ca-central-1"};
const char* const kZoneIds[] = {"use1-az4", "euw1-az2", "apse2-az1", "cac1-az1"};
const char* const kImages[] = {"ami-0abcdef1234567890", "ami-0fedcba9876543210",
                               "ami-01a2b3c4d5e6f7a8b", "ami-0123abcd4567ef890",
                               "ami-09f8e7d6c5b4a3928", "ami-0a1b2c3d4e5f60718"};
const char* const kTypes[] = {"t3.micro", "t3.small", "m6i.large", "m6i.xlarge",
                              "c6i.2xlarge", "r6i.large", "t4g.medium", "m7g.large"};
const char* const kTeams[] = {"platform", "payments", "search", "data", "web", "ml"};
const char* const kEnvs[] = {"prod", "staging", "dev"};
const char* const kApps[] = {"api", "worker", "cache", "db", "frontend", "batch", "queue"};

template <size_t M>
const char* Pick(const char* const (&set)[M], uint64_t r) {
  return set[r % M];
}

void AppendF(std::string& out, const char* fmt, ...) __attribute__((format(printf, 2, 3)));
void AppendF(std::string& out, const char* fmt, ...) {
  char buf[512];
  va_list ap;
  va_start(ap, fmt);
  int n = std::vsnprintf(buf, sizeof(buf), fmt, ap);
  va_end(ap);
  if (n < 0 || static_cast<size_t>(n) >= sizeof(buf)) std::abort();  // fixed formats only
  out.append(buf, static_cast<size_t>(n));
}

void AppendBase64(std::string& out, Rng& rng, size_t bytes) {
  unsigned char raw[1024];
  for (size_t i = 0; i < bytes; i += 8) {
    uint64_t v = rng.Next();
    std::memcpy(raw + i, &v, bytes - i < 8 ? bytes - i : 8);
  }
  size_t i = 0;
  for (; i + 3 <= bytes; i += 3) {
    uint32_t v = (raw[i] << 16) | (raw[i + 1] << 8) | raw[i + 2];
    out += kB64[(v >> 18) & 63];
    out += kB64[(v >> 12) & 63];
    out += kB64[(v >> 6) & 63];
    out += kB64[v & 63];
  }
  if (bytes - i == 1) {
    uint32_t v = raw[i] << 16;
    out += kB64[(v >> 18) & 63];
    out += kB64[(v >> 12) & 63];
    out += "==";
  } else if (bytes - i == 2) {
    uint32_t v = (raw[i] << 16) | (raw[i + 1] << 8);
    out += kB64[(v >> 18) & 63];
    out += kB64[(v >> 12) & 63];
    out += kB64[(v >> 6) & 63];
    out += '=';
  }
}

// `n` characters of [A-Z0-9] (access key ids) or the base64 alphabet.
void AppendChars(std::string& out, Rng& rng, size_t n, bool upper_alnum) {
  static constexpr char kUpper[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZ234567";
  for (size_t i = 0; i < n; ++i) {
    uint64_t r = rng.Next() >> 20;
    out += upper_alnum ? kUpper[r & 31] : kB64[r & 63];
  }
}

std::string Rfc3339(uint64_t unix_seconds) {
  char buf[32];
  const time_t s = static_cast<time_t>(unix_seconds);
  struct tm tm;
  gmtime_r(&s, &tm);
  std::strftime(buf, sizeof(buf), "%Y-%m-%dT%H:%M:%SZ", &tm);
  return buf;
}

std::string Hex17(uint64_t v) {
  char buf[24];
  std::snprintf(buf, sizeof(buf), "%017" PRIx64, v);
  return buf;
}

// One record on one line, newline included.
void AppendInstance(std::string& out, uint64_t i) {
  Rng rng{Mix64(i ^ 0x5ca1ab1e) | 1};
  const int net = static_cast<int>(i % kNetworks);
  const uint64_t j = i / kNetworks;  // index inside its network
  const uint64_t subnet = j / 250;   // /24 number inside 10.0.0.0/8
  const int host = static_cast<int>(j % 250) + 4;
  if (subnet >= 65536) std::abort();  // 16 M instances per network
  const int a = static_cast<int>(subnet >> 8), b = static_cast<int>(subnet & 255);
  const int region = net % 4;
  const char zone = static_cast<char>('a' + (j % 3));
  const std::string id = InstanceId(i);
  const uint64_t account = 100000000000ULL + static_cast<uint64_t>(net) * 7919;
  const std::string vpc = Hex17(Mix64(0x7fc000 + net));
  const std::string subnet_id = Hex17(Mix64((uint64_t{1} << 40) + (net << 16) + subnet));
  const std::string sg1 = Hex17(Mix64(0x5e6000 + net)), sg2 = Hex17(Mix64(0x5e7000 + i % 97));
  const uint64_t launch = 1764000000 + (i % 8000000);
  char hostname[48];
  std::snprintf(hostname, sizeof(hostname), "ip-10-%d-%d-%d.ec2.internal", a, b, host);

  AppendF(out, "{\"id\":\"%s\",\"network\":\"tenant-%02d\",\"name\":\"%s-%06" PRIu64 "\"", id.c_str(),
          net, Pick(kApps, i), j);
  AppendF(out, ",\"hostname\":\"%s\",\"local_hostname\":\"%s\"", hostname, hostname);
  AppendF(out, ",\"account_id\":\"%012" PRIu64 "\",\"image_id\":\"%s\",\"instance_type\":\"%s\"",
          account, Pick(kImages, rng.Next()), Pick(kTypes, rng.Next()));
  AppendF(out, ",\"reservation_id\":\"r-%s\",\"region\":\"%s\",\"availability_zone\":\"%s%c\"",
          Hex17(Mix64(i + 0x1000000000ULL)).c_str(), kRegions[region], kRegions[region], zone);
  AppendF(out, ",\"availability_zone_id\":\"%s\",\"launch_time\":\"%s\"", kZoneIds[region],
          Rfc3339(launch).c_str());
  // One NIC: a unique MAC (the index), the primary private IPv4.
  AppendF(out,
          ",\"nics\":[{\"mac\":\"02:%02x:%02x:%02x:%02x:%02x\",\"device_number\":0,"
          "\"interface_id\":\"eni-%s\",\"local_hostname\":\"%s\","
          "\"private_ipv4s\":[\"10.%d.%d.%d\"]",
          static_cast<unsigned>((i >> 32) & 255), static_cast<unsigned>((i >> 24) & 255),
          static_cast<unsigned>((i >> 16) & 255), static_cast<unsigned>((i >> 8) & 255),
          static_cast<unsigned>(i & 255), Hex17(Mix64(i + 0x2000000000ULL)).c_str(), hostname, a,
          b, host);
  AppendF(out,
          ",\"subnet_id\":\"subnet-%s\",\"subnet_ipv4_cidr\":\"10.%d.%d.0/24\","
          "\"vpc_id\":\"vpc-%s\",\"vpc_ipv4_cidr\":\"10.0.0.0/8\",\"vpc_ipv4_cidrs\":[\"10.0.0.0/8\"]",
          subnet_id.c_str(), a, b, vpc.c_str());
  AppendF(out,
          ",\"security_groups\":[\"default\",\"%s-%s\"],"
          "\"security_group_ids\":[\"sg-%s\",\"sg-%s\"]}]",
          Pick(kTeams, i / 7), Pick(kApps, i), sg1.c_str(), sg2.c_str());
  // An ed25519 public key is 68 base64 characters after the type.
  out += ",\"ssh_keys\":[{\"name\":\"deploy\",\"key\":\"ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAI";
  AppendChars(out, rng, 43, false);
  AppendF(out, " deploy@tenant-%02d\"}]", net);
  out += ",\"user_data\":\"";
  AppendBase64(out, rng, kUserDataBytes);
  out += '"';
  AppendF(out,
          ",\"tags\":{\"Name\":\"%s-%06" PRIu64
          "\",\"team\":\"%s\",\"env\":\"%s\",\"app\":\"%s\","
          "\"cost-center\":\"cc-%04d\",\"owner\":\"%s@example.com\"}",
          Pick(kApps, i), j, Pick(kTeams, i / 7), Pick(kEnvs, i / 3), Pick(kApps, i),
          static_cast<int>(i % 1000), Pick(kTeams, i / 7));
  AppendF(out,
          ",\"iam\":{\"role\":\"%s-%s\",\"instance_profile_arn\":\"arn:aws:iam::%012" PRIu64
          ":instance-profile/%s-%s\",\"instance_profile_id\":\"AIPA",
          Pick(kTeams, i / 7), Pick(kApps, i), account, Pick(kTeams, i / 7), Pick(kApps, i));
  AppendChars(out, rng, 17, true);
  out += "\",\"credentials\":{\"access_key_id\":\"ASIA";
  AppendChars(out, rng, 16, true);
  out += "\",\"secret_access_key\":\"";
  AppendChars(out, rng, 40, false);
  out += "\",\"token\":\"IQoJb3JpZ2luX2VjE";
  AppendChars(out, rng, 384, false);
  out += "\",\"expiration\":\"2026-11-25T19:00:00Z\",\"last_updated\":\"2026-11-25T13:00:00Z\"}}";
  out += ",\"block_devices\":{\"ami\":\"/dev/xvda\",\"root\":\"/dev/xvda\",\"ebs1\":\"sdb\"}";
  AppendF(out,
          ",\"metadata_options\":{\"http_tokens\":\"%s\",\"hop_limit\":%d,"
          "\"instance_metadata_tags\":\"%s\"}}\n",
          i % 4 == 0 ? "optional" : "required", i % 2 == 0 ? 1 : 2,
          i % 2 == 0 ? "enabled" : "disabled");
}

void AppendProbe(std::string& out, int k) {
  using namespace openimds::bench;
  AppendF(out,
          "{\"id\":\"%s\",\"network\":\"%s\",\"name\":\"probe-%d\","
          "\"nics\":[{\"mac\":\"02:ff:00:00:00:%02x\",\"private_ipv4s\":[\"%s\"]}],"
          "\"tags\":{\"Name\":\"probe-%d\",\"%s\":\"0\"},"
          "\"metadata_options\":{\"http_tokens\":\"optional\",\"instance_metadata_tags\":"
          "\"enabled\"}}\n",
          ProbeId(k).c_str(), kProbeNetwork, k, k, ProbeAddress(k).c_str(), k, kProbeTag);
}

int Usage() {
  std::fprintf(stderr,
               "usage: scale_gen fleet N FILE | scale_gen probes P FILE   (FILE - = stdout)\n");
  return 2;
}

}  // namespace

int main(int argc, char** argv) {
  if (argc != 4) return Usage();
  const std::string what = argv[1];
  char* end = nullptr;
  const unsigned long long n = std::strtoull(argv[2], &end, 10);
  if (*end != '\0' || (what != "fleet" && what != "probes")) return Usage();
  if (what == "probes" && n > 200) return Usage();  // 127.0.0.2 .. 127.0.0.201
  FILE* f = std::strcmp(argv[3], "-") == 0 ? stdout : std::fopen(argv[3], "w");
  if (f == nullptr) {
    std::perror(argv[3]);
    return 1;
  }
  std::string buf;
  buf.reserve(4 << 20);
  for (unsigned long long i = 0; i < n; ++i) {
    if (what == "fleet") {
      AppendInstance(buf, i);
    } else {
      AppendProbe(buf, static_cast<int>(i));
    }
    if (buf.size() >= (3 << 20) || i + 1 == n) {
      if (std::fwrite(buf.data(), 1, buf.size(), f) != buf.size()) {
        std::perror("write");
        return 1;
      }
      buf.clear();
    }
  }
  if (std::fflush(f) != 0 || (f != stdout && std::fclose(f) != 0)) {
    std::perror("close");
    return 1;
  }
  return 0;
}
