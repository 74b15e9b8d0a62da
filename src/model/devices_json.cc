#include "model/devices_json.h"

#include <algorithm>
#include <iterator>
#include <optional>
#include <string>
#include <string_view>

#include <boost/json.hpp>

#include "model/limit_checker.h"
#include "model/text_checks.h"

namespace openimds::model {

namespace json = boost::json;
using common::Status;
using namespace json_reader;  // NOLINT: the reader toolkit

namespace {

auto OptInt(std::optional<int>& out) {
  return [&out](const json::value& v, const Path& at) {
    int n = 0;
    if (Status s = IntValue(v, at, n); !s.ok()) return s;
    out = n;
    return Status::Ok();
  };
}

auto OptBool(std::optional<bool>& out) {
  return [&out](const json::value& v, const Path& at) {
    if (!v.is_bool()) return Err(at, "expected true or false");
    out = v.get_bool();
    return Status::Ok();
  };
}

constexpr std::pair<Device::Kind, std::string_view> kDeviceKinds[] = {
    {Device::Kind::kNic, "nic"},
    {Device::Kind::kDisk, "disk"},
};

auto DeviceKind(Device::Kind& out) {
  return [&out](const json::value& v, const Path& at) {
    if (v.is_string()) {
      for (const auto& [kind, name] : kDeviceKinds) {
        if (v.get_string() == name) {
          out = kind;
          return Status::Ok();
        }
      }
    }
    return Err(at, "expected \"nic\" or \"disk\"");
  };
}

Status ReadDevice(const json::value& v, const Path& at, Device& d) {
  return ReadObject(v, at,
                    {
                        {"type", DeviceKind(d.kind)},
                        {"bus", String(d.bus)},
                        {"address", String(d.address)},
                        {"tags", StringArray(d.tags)},
                        {"mac", String(d.mac)},
                        {"vlan", OptInt(d.vlan)},
                        {"vf_trusted", OptBool(d.vf_trusted)},
                        {"serial", String(d.serial)},
                        {"path", String(d.path)},
                    });
}

constexpr std::string_view kBuses[] = {"pci", "usb", "scsi", "ide", "xen", "none"};

}  // namespace

Status ReadDevices(const json::value& v, const Path& at, std::vector<Device>& out) {
  return Array(out, ReadDevice)(v, at);
}

void CanonicaliseDevices(std::vector<Device>& devices) {
  for (Device& d : devices) {
    if (IsMac(d.mac)) d.mac = Lower(d.mac);
  }
}

Status CheckDevices(const std::vector<Device>& devices) {
  for (size_t i = 0; i < devices.size(); ++i) {
    const Device& d = devices[i];
    const std::string at = Child("/devices", i);
    if (std::find(std::begin(kBuses), std::end(kBuses), d.bus) == std::end(kBuses)) {
      return Err(Child(at, "bus"), "expected pci, usb, scsi, ide, xen or none");
    }
    if (d.address.empty()) return Err(Child(at, "address"), "required");
    if (Status s = CheckLine(Child(at, "address"), d.address); !s.ok()) return s;
    for (size_t t = 0; t < d.tags.size(); ++t) {
      const std::string p = Child(Child(at, "tags"), t);
      if (d.tags[t].empty()) return Err(p, "empty");
      if (Status s = CheckLine(p, d.tags[t]); !s.ok()) return s;
    }
    if (d.kind == Device::Kind::kNic) {
      if (Status s = CheckMac(Child(at, "mac"), d.mac); !s.ok()) return s;
      if (d.vlan && (*d.vlan < 1 || *d.vlan > 4094)) {
        return Err(Child(at, "vlan"), std::to_string(*d.vlan) + " not in 1..4094");
      }
      if (!d.serial.empty()) return Err(Child(at, "serial"), "only for a disk");
      if (!d.path.empty()) return Err(Child(at, "path"), "only for a disk");
    } else {
      if (!d.mac.empty()) return Err(Child(at, "mac"), "only for a nic");
      if (d.vlan) return Err(Child(at, "vlan"), "only for a nic");
      if (d.vf_trusted) return Err(Child(at, "vf_trusted"), "only for a nic");
      if (Status s = CheckLine(Child(at, "serial"), d.serial); !s.ok()) return s;
      if (Status s = CheckLine(Child(at, "path"), d.path); !s.ok()) return s;
    }
  }
  return Status::Ok();
}

Status CheckDeviceLimits(const std::vector<Device>& in_devices, const LimitChecker& c) {
  const Path devices("/devices");
  if (Status s = c.Count(devices, in_devices.size()); !s.ok()) return s;
  for (size_t i = 0; i < in_devices.size(); ++i) {
    const Device& d = in_devices[i];
    const Path at(devices, i);
    const std::pair<const char*, const std::string*> texts[] = {
        {"bus", &d.bus},       {"address", &d.address}, {"mac", &d.mac},
        {"serial", &d.serial}, {"path", &d.path},
    };
    for (const auto& [name, value] : texts) {
      if (Status s = c.Bytes(Path(at, name), *value); !s.ok()) return s;
    }
    if (Status s = c.TextList(Path(at, "tags"), d.tags); !s.ok()) return s;
  }
  return Status::Ok();
}

void DevicesToJson(const std::vector<Device>& in_devices, json::object& o) {
  using json_writer::PutArray;
  using json_writer::PutString;
  if (in_devices.empty()) return;
  json::array devices;
  for (const Device& d : in_devices) {
    json::object j;
    j["type"] = d.kind == Device::Kind::kNic ? "nic" : "disk";
    j["bus"] = d.bus;
    j["address"] = d.address;
    PutArray(j, "tags", d.tags);
    PutString(j, "mac", d.mac);
    if (d.vlan) j["vlan"] = *d.vlan;
    if (d.vf_trusted) j["vf_trusted"] = *d.vf_trusted;
    PutString(j, "serial", d.serial);
    PutString(j, "path", d.path);
    devices.emplace_back(std::move(j));
  }
  o["devices"] = std::move(devices);
}

void DevicesToText(const std::vector<Device>& devices, json_writer::Writer& w) {
  if (devices.empty()) return;
  w.Key("devices");
  w.BeginArray();
  for (const Device& d : devices) {
    w.BeginObject();
    w.Key("type");
    w.String(d.kind == Device::Kind::kNic ? "nic" : "disk");
    w.Key("bus");
    w.String(d.bus);
    w.Key("address");
    w.String(d.address);
    w.PutArray("tags", d.tags);
    w.PutString("mac", d.mac);
    if (d.vlan) {
      w.Key("vlan");
      w.Int(*d.vlan);
    }
    if (d.vf_trusted) {
      w.Key("vf_trusted");
      w.Bool(*d.vf_trusted);
    }
    w.PutString("serial", d.serial);
    w.PutString("path", d.path);
    w.EndObject();
  }
  w.EndArray();
}

}  // namespace openimds::model
