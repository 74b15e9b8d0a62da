#pragma once

#include <chrono>
#include <string>

#include "common/time_format.h"
#include "model/instance.h"

namespace openimds::flavour::ec2::test_support {

inline model::TimePoint At(std::string_view rfc3339) { return *common::ParseRfc3339(rfc3339); }

// A fully populated instance, built in code so these tests do not depend on
// the model's JSON mapping. Two NICs whose MACs sort opposite to their device
// numbers, two keys, tags (one empty, one not IMDS-safe), a role with
// credentials valid until 18:00, binary user-data.
inline model::Instance TestInstance() {
  model::Instance i;
  i.id = "i-0123456789abcdef0";
  i.network = "blue";
  i.name = "web-1";
  i.hostname = "ip-10-0-0-12.ec2.internal";
  i.local_hostname = "ip-10-0-0-12.ec2.internal";
  i.public_hostname = "ec2-203-0-113-25.compute-1.amazonaws.com";
  i.account_id = "123456789012";
  i.image_id = "ami-0abcdef1234567890";
  i.instance_type = "m5.large";
  i.launch_index = 3;
  i.reservation_id = "r-0fedcba9876543210";
  i.region = "us-east-1";
  i.availability_zone = "us-east-1a";
  i.availability_zone_id = "use1-az4";
  i.architecture = "x86_64";
  i.launch_time = At("2024-05-01T12:00:00Z");

  model::Nic eth0;
  eth0.mac = "0e:49:61:0f:c3:11";
  eth0.device_number = 0;
  eth0.interface_id = "eni-0aaaaaaaaaaaaaaa1";
  eth0.local_hostname = "ip-10-0-0-12.ec2.internal";
  eth0.public_hostname = "ec2-203-0-113-25.compute-1.amazonaws.com";
  eth0.private_ipv4s = {"10.0.0.12", "10.0.0.13"};
  eth0.public_ipv4s = {"203.0.113.25"};
  eth0.ipv6s = {"2001:db8::12", "2001:db8::13"};
  eth0.subnet_id = "subnet-0aaaaaaaaaaaaaaa1";
  eth0.subnet_ipv4_cidr = "10.0.0.0/24";
  eth0.subnet_ipv6_cidrs = {"2001:db8::/64"};
  eth0.vpc_id = "vpc-0bbbbbbbbbbbbbbb1";
  eth0.vpc_ipv4_cidr = "10.0.0.0/16";
  eth0.vpc_ipv4_cidrs = {"10.0.0.0/16", "10.1.0.0/16"};
  eth0.vpc_ipv6_cidrs = {"2001:db8::/56"};
  eth0.security_groups = {"default", "web"};
  eth0.security_group_ids = {"sg-0000000000000000a", "sg-0000000000000000b"};

  model::Nic eth1;
  eth1.mac = "02:1a:2b:3c:4d:5e";
  eth1.device_number = 1;
  eth1.network_card_index = 0;
  eth1.interface_id = "eni-0aaaaaaaaaaaaaaa2";
  eth1.owner_id = "210987654321";
  eth1.local_hostname = "ip-10-0-1-7.ec2.internal";
  eth1.private_ipv4s = {"10.0.1.7"};
  eth1.subnet_id = "subnet-0aaaaaaaaaaaaaaa2";
  eth1.subnet_ipv4_cidr = "10.0.1.0/24";
  eth1.vpc_id = "vpc-0bbbbbbbbbbbbbbb1";
  eth1.vpc_ipv4_cidr = "10.0.0.0/16";
  eth1.security_groups = {"default"};
  eth1.security_group_ids = {"sg-0000000000000000a"};
  i.nics = {eth0, eth1};

  i.ssh_keys = {
      {"test-key",
       "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIOMqqnkVzrm0SdG6UOoqKLsabgH5C9okWi0dh2l9GKJl test-key"},
      {"backup",
       "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIBackupKeyBackupKeyBackupKeyBackupKeyBackup0 backup"},
  };
  i.user_data = std::string("#!/bin/sh\necho hello\n\x00\xff\x01", 24);
  i.tags = {{"Name", "web-1"}, {"Environment", "prod"}, {"Empty", ""}, {"bad key", "x"}};

  model::IamRole role;
  role.name = "web-role";
  role.instance_profile_arn = "arn:aws:iam::123456789012:instance-profile/web-profile";
  role.instance_profile_id = "AIPAI4EXAMPLEWVK2RW";
  model::Credentials creds;
  creds.access_key_id = "ASIAIOSFODNN7EXAMPLE";
  creds.secret_access_key = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY";
  creds.token = "IQoJb3JpZ2luX2VjEXAMPLE\"token\"";
  creds.last_updated = At("2024-05-01T12:00:00Z");
  creds.expiration = At("2024-05-01T18:00:00Z");
  role.credentials = creds;
  i.iam = role;

  i.block_devices = {{"ami", "/dev/xvda"}, {"root", "/dev/xvda"}, {"ebs1", "sdb"}};
  i.options.hop_limit = 2;
  return i;
}

// TestInstance() with every EC2 fidelity field and one event of each kind.
// Times relative to 2024-05-01T13:00:00Z (the tests' clock):
// spot notice at 13:10 (action 13:12), rebalance at 13:05, maintenance
// event A visible at once (13:00), active until 14:00; event B visible from
// 13:30 and canceled; ASG Warmed:Stopped from 12:00, InService from 13:20,
// Terminated from 15:00.
inline model::Instance FullTestInstance() {
  model::Instance i = TestInstance();
  i.ec2.mut().ami_manifest_path = "(unknown)";
  i.ec2.mut().ancestor_ami_ids = {"ami-0aaaaaaaaaaaaaaa1", "ami-0aaaaaaaaaaaaaaa2"};
  i.ec2.mut().product_codes = {"1abc2defghijklm3nopqrs4tu"};
  i.ec2.mut().billing_products = {"bp-6ba54002"};
  i.ec2.mut().instance_life_cycle = "spot";
  i.ec2.mut().placement_group = "web-cluster";
  i.ec2.mut().host_id = "h-0123456789abcdef0";
  i.ec2.mut().partition_number = 3;
  i.ec2.mut().detailed_monitoring = true;
  model::Credentials identity;
  identity.access_key_id = "ASIAIDENTITYEXAMPLE1";
  identity.secret_access_key = "identity/secret/EXAMPLEKEY";
  identity.token = "identity-token";
  identity.last_updated = At("2024-05-01T12:30:00Z");
  identity.expiration = At("2024-05-01T18:30:00Z");
  i.ec2.mut().identity_credentials = identity;
  i.nics[0].ipv4_prefixes = {"10.0.8.0/28"};
  i.nics[0].ipv6_prefixes = {"2001:db8:1::/80"};
  i.nics[0].ipv4_associations = {{"203.0.113.25", "10.0.0.12"}};

  model::PlatformEvents& e = i.ec2.mut().events;
  e.spot = model::SpotInterruption{"terminate", At("2024-05-01T13:12:00Z"), model::TimePoint{}};
  e.rebalance_notice = At("2024-05-01T13:05:00Z");
  model::ScheduledEvent a;
  a.id = "instance-event-0d59937288b749b32";
  a.code = "system-reboot";
  a.description = "scheduled reboot";
  a.not_before = At("2024-05-01T13:40:43Z");
  a.not_after = At("2024-05-01T14:00:00Z");
  model::ScheduledEvent b;
  b.id = "instance-event-0aaaaaaaaaaaaaaa1";
  b.code = "instance-stop";
  b.state = model::ScheduledEvent::State::kCanceled;
  b.description = "The instance is scheduled for instance-stop";
  b.not_before = At("2024-05-08T09:00:00Z");
  b.not_before_deadline = At("2024-05-10T09:00:00Z");
  b.notice_time = At("2024-05-01T13:30:00Z");
  e.scheduled = {a, b};
  e.lifecycle = {{"Warmed:Stopped", At("2024-05-01T12:00:00Z")},
                 {"InService", At("2024-05-01T13:20:00Z")},
                 {"Terminated", At("2024-05-01T15:00:00Z")}};
  return i;
}

}  // namespace openimds::flavour::ec2::test_support
