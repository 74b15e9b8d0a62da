// Micro-benchmarks of the model's JSON mapping on a realistic ~3 KiB EC2
// record: the store parses every row with FromJsonText at start-up, and an
// import parses and serialises each record a few times, so these are on the
// fleet's load and write paths. Run: build/bench/model_json_bench.
#include <benchmark/benchmark.h>

#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <string>

#include "common/encoding.h"
#include "model/instance_json.h"

namespace {

using openimds::model::FromJsonText;
using openimds::model::Instance;

// Deterministic pseudo-random bytes (xorshift), so every run measures the same record.
std::string PseudoRandomBytes(size_t n, uint64_t seed) {
  std::string out(n, '\0');
  uint64_t x = seed;
  for (char& c : out) {
    x ^= x << 13;
    x ^= x >> 7;
    x ^= x << 17;
    c = static_cast<char>(x & 0xff);
  }
  return out;
}

std::string RealisticRecord() {
  const std::string user_data = openimds::common::Base64Encode(PseudoRandomBytes(768, 42));
  std::string token = "IQoJb3JpZ2luX2VjEJr//////////wEaCXVzLWVhc3QtMSJHMEUCIQD";
  while (token.size() < 400) token += "Zm9vYmFyYmF6cXV4cXV1eDEyMzQ1Njc4OTBhYmNkZWZnaGlqa2xtbm9w";
  token.resize(400);
  return std::string(R"({"id":"i-0123456789abcdef0","network":"tenant-07","name":"payments-api-7",)") +
         R"("hostname":"ip-10-7-3-21.ec2.internal","local_hostname":"ip-10-7-3-21.ec2.internal",)"
         R"("account_id":"123456789012","image_id":"ami-0abcdef1234567890",)"
         R"("instance_type":"m5.large","reservation_id":"r-0fedcba9876543210",)"
         R"("region":"us-east-1","availability_zone":"us-east-1a","availability_zone_id":"use1-az4",)"
         R"("launch_time":"2025-03-14T09:26:53Z",)"
         R"("nics":[{"mac":"02:1a:2b:3c:4d:5e","device_number":0,"interface_id":"eni-0a1b2c3d4e5f67890",)"
         R"("local_hostname":"ip-10-7-3-21.ec2.internal","private_ipv4s":["10.7.3.21"],)"
         R"("subnet_id":"subnet-0123456789abcdef0","subnet_ipv4_cidr":"10.7.3.0/24",)"
         R"("vpc_id":"vpc-0123456789abcdef0","vpc_ipv4_cidr":"10.0.0.0/8","vpc_ipv4_cidrs":["10.0.0.0/8"],)"
         R"("security_groups":["default","payments-api"],)"
         R"("security_group_ids":["sg-0123456789abcdef0","sg-0fedcba9876543210"]}],)"
         R"("ssh_keys":[{"name":"deploy","key":"ssh-ed25519 )"
         R"(AAAAC3NzaC1lZDI1NTE5AAAAIGx4c1Zq3h0bPq9uT2mWk7yR1eLp8dNf5vJc6aBoYtKs deploy@tenant-07"}],)"
         R"("user_data":")" + user_data + R"(",)" +
         R"("tags":{"Name":"payments-api-7","team":"payments","env":"production","app":"payments-api",)"
         R"("cost-center":"cc-4711","owner":"payments-oncall@example.com"},)"
         R"("iam":{"role":"payments-api","instance_profile_arn":)"
         R"("arn:aws:iam::123456789012:instance-profile/payments-api",)"
         R"("instance_profile_id":"AIPAJQABLZS4A3QDU576Q","credentials":{)"
         R"("access_key_id":"ASIAIOSFODNN7EXAMPLE",)"
         R"("secret_access_key":"wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY",)"
         R"("token":")" + token + R"(",)" +
         R"("expiration":"2025-03-14T15:26:53Z","last_updated":"2025-03-14T09:26:53Z"}},)"
         R"("block_devices":{"ami":"/dev/xvda","root":"/dev/xvda","ebs1":"sdb"},)"
         R"("metadata_options":{"http_tokens":"required","hop_limit":2,)"
         R"("instance_metadata_tags":"enabled"}})";
}

// The realistic record with the groups most records leave empty set as well:
// EC2-only fields (placement, events, the NIC's prefixes) and a guest network
// configuration. Their members are written after everything else, so this is
// the record to watch for the cost of reading and writing those groups.
std::string RecordWithEc2AndGuestFields() {
  std::string t = RealisticRecord();
  t.pop_back();  // the closing brace
  t.replace(t.find(R"("security_groups":)"), 0, R"("ipv4_prefixes":["10.7.8.0/28"],)");
  return t + R"(,"network_config":{"links":[{"name":"eth0","type":"physical",)"
             R"("mac":"02:1a:2b:3c:4d:5e","mtu":9001}],"networks":[{"link":"eth0",)"
             R"("ip_version":4,"mode":"static","address":"10.7.3.21/24","gateway":"10.7.3.1",)"
             R"("dns_servers":["10.7.0.2"]}]},"flavours":["ec2","openstack"],)"
             R"("instance_life_cycle":"spot","placement_group":"payments-cluster",)"
             R"("partition_number":2,"monitoring":"enabled","product_codes":["1abc2defghijk"],)"
             R"("events":{"spot":{"action":"terminate","time":"2025-03-14T12:00:00Z"},)"
             R"("scheduled":[{"id":"instance-event-0d59937288b749b32","code":"system-reboot",)"
             R"("state":"active","not_before":"2025-03-20T09:00:00Z"}]}})";
}

// A record parsed once; aborts the benchmark run if the record is not valid
// (a benchmark of the error path would measure the wrong thing).
std::string Checked(std::string t) {
  if (auto r = FromJsonText(t); !r.ok()) {
    std::fprintf(stderr, "bench record does not parse: %s\n", r.status().message().c_str());
    std::abort();
  }
  return t;
}

const std::string& Text() {
  static const std::string text = Checked(RealisticRecord());
  return text;
}

const std::string& TextWithGroups() {
  static const std::string text = Checked(RecordWithEc2AndGuestFields());
  return text;
}

const Instance& Parsed() {
  static const Instance instance = *FromJsonText(Text());
  return instance;
}

const Instance& ParsedWithGroups() {
  static const Instance instance = *FromJsonText(TextWithGroups());
  return instance;
}

void BM_FromJsonText(benchmark::State& state) {
  const std::string& text = Text();
  for (auto _ : state) {
    auto r = FromJsonText(text);
    benchmark::DoNotOptimize(r);
  }
  state.SetBytesProcessed(static_cast<int64_t>(state.iterations()) *
                          static_cast<int64_t>(text.size()));
  state.counters["record_bytes"] = static_cast<double>(text.size());
}
BENCHMARK(BM_FromJsonText);

void BM_ToJsonText(benchmark::State& state) {
  const Instance& in = Parsed();
  for (auto _ : state) {
    std::string s = openimds::model::ToJsonText(in);
    benchmark::DoNotOptimize(s);
  }
}
BENCHMARK(BM_ToJsonText);

void BM_FromJsonTextEc2AndGuest(benchmark::State& state) {
  const std::string& text = TextWithGroups();
  for (auto _ : state) {
    auto r = FromJsonText(text);
    benchmark::DoNotOptimize(r);
  }
  state.SetBytesProcessed(static_cast<int64_t>(state.iterations()) *
                          static_cast<int64_t>(text.size()));
  state.counters["record_bytes"] = static_cast<double>(text.size());
}
BENCHMARK(BM_FromJsonTextEc2AndGuest);

void BM_ToJsonTextEc2AndGuest(benchmark::State& state) {
  const Instance& in = ParsedWithGroups();
  for (auto _ : state) {
    std::string s = openimds::model::ToJsonText(in);
    benchmark::DoNotOptimize(s);
  }
}
BENCHMARK(BM_ToJsonTextEc2AndGuest);

// What a writer does before storing a record built in code.
void BM_NormalizeValidate(benchmark::State& state) {
  const Instance& in = Parsed();
  for (auto _ : state) {
    Instance copy = in;
    openimds::model::Normalize(copy);
    auto s = openimds::model::Validate(copy);
    benchmark::DoNotOptimize(s);
  }
}
BENCHMARK(BM_NormalizeValidate);

// The copy BM_NormalizeValidate includes, on its own, to subtract.
void BM_CopyInstance(benchmark::State& state) {
  const Instance& in = Parsed();
  for (auto _ : state) {
    Instance copy = in;
    benchmark::DoNotOptimize(copy);
  }
}
BENCHMARK(BM_CopyInstance);

}  // namespace

BENCHMARK_MAIN();
