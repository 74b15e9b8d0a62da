#pragma once

#include <vector>

#include <boost/json/fwd.hpp>

#include "common/status.h"
#include "model/instance.h"
#include "model/json_reader.h"
#include "model/json_writer.h"

// The record's SSH public keys ("ssh_keys": [{"name", "key"}]): JSON and
// checks. Internal to the model module.
namespace openimds::model {

common::Status ReadSshKeys(const boost::json::value& v, const json_reader::Path& at,
                           std::vector<SshKey>& out);

// Names non-empty, unique, one line; keys non-empty and one line each.
common::Status ValidateSshKeys(const std::vector<SshKey>& keys);

// Writes "ssh_keys" unless there are none.
void SshKeysToJson(const std::vector<SshKey>& keys, boost::json::object& o);
void SshKeysToText(const std::vector<SshKey>& keys, json_writer::Writer& w);

}  // namespace openimds::model
