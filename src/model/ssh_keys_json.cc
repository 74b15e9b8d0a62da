#include "model/ssh_keys_json.h"

#include <set>
#include <string>
#include <string_view>

#include <boost/json.hpp>

#include "model/text_checks.h"

namespace openimds::model {

namespace json = boost::json;
using common::Status;
using namespace json_reader;  // NOLINT: the reader toolkit

Status ReadSshKeys(const json::value& v, const Path& at, std::vector<SshKey>& out) {
  if (!v.is_array()) return Err(at, "expected array");
  out.clear();
  const auto& array = v.get_array();
  out.reserve(array.size());
  for (size_t i = 0; i < array.size(); ++i) {
    SshKey& key = out.emplace_back();
    if (Status s = ReadObject(array[i], Path(at, i),
                              {{"name", InternedString(key.name)}, {"key", String(key.key)}});
        !s.ok()) {
      return s;
    }
  }
  return Status::Ok();
}

Status ValidateSshKeys(const std::vector<SshKey>& keys) {
  std::set<std::string_view> key_names;
  const Path ssh_keys("/ssh_keys");
  for (size_t i = 0; i < keys.size(); ++i) {
    const SshKey& key = keys[i];
    const Path at(ssh_keys, i);
    if (key.name.empty()) return Err(Path(at, "name"), "empty");
    if (Status s = CheckText(Path(at, "name"), key.name); !s.ok()) return s;
    if (!key_names.insert(key.name).second) {
      return Err(Path(at, "name"), "\"" + key.name + "\" listed twice");
    }
    if (key.key.empty()) return Err(Path(at, "key"), "empty");
    if (key.key.find('\r') != std::string::npos || key.key.find('\n') != std::string::npos) {
      return Err(Path(at, "key"), "contains a line break (one key per entry)");
    }
    if (Status s = CheckText(Path(at, "key"), key.key); !s.ok()) return s;
  }
  return Status::Ok();
}

void SshKeysToJson(const std::vector<SshKey>& keys, json::object& o) {
  if (keys.empty()) return;
  json::array out;
  for (const SshKey& key : keys) {
    out.emplace_back(json::object{{"name", key.name}, {"key", key.key}});
  }
  o["ssh_keys"] = std::move(out);
}

void SshKeysToText(const std::vector<SshKey>& keys, json_writer::Writer& w) {
  if (keys.empty()) return;
  w.Key("ssh_keys");
  w.BeginArray();
  for (const SshKey& key : keys) {
    w.BeginObject();
    w.Key("name");
    w.String(key.name);
    w.Key("key");
    w.String(key.key);
    w.EndObject();
  }
  w.EndArray();
}

}  // namespace openimds::model
