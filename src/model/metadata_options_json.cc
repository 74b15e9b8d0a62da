#include "model/metadata_options_json.h"

#include <string>

#include <boost/json.hpp>

namespace openimds::model {

namespace json = boost::json;
using common::Status;
using namespace json_reader;  // NOLINT: the reader toolkit

Status ReadMetadataOptions(const json::value& v, const Path& at, MetadataOptions& out) {
  bool required = out.http_tokens == MetadataOptions::HttpTokens::kRequired;
  int hop_limit = out.hop_limit;
  if (Status s = ReadObject(
          v, at,
          {
              {"http_tokens", Choice(required, "required", "optional")},
              {"http_endpoint", Choice(out.http_endpoint_enabled, "enabled", "disabled")},
              {"hop_limit", Int(hop_limit)},
              {"instance_metadata_tags", Choice(out.tags_enabled, "enabled", "disabled")},
          });
      !s.ok()) {
    return s;
  }
  out.http_tokens =
      required ? MetadataOptions::HttpTokens::kRequired : MetadataOptions::HttpTokens::kOptional;
  if (hop_limit < 1 || hop_limit > 64) {
    return Err("/metadata_options/hop_limit", std::to_string(hop_limit) + " not in 1..64");
  }
  out.hop_limit = static_cast<uint8_t>(hop_limit);
  return Status::Ok();
}

Status ValidateMetadataOptions(const MetadataOptions& options) {
  if (options.hop_limit < 1 || options.hop_limit > 64) {
    return Err("/metadata_options/hop_limit",
               std::to_string(int{options.hop_limit}) + " not in 1..64");
  }
  return Status::Ok();
}

void MetadataOptionsToJson(const MetadataOptions& in, json::object& o) {
  json::object options;
  options["http_tokens"] =
      in.http_tokens == MetadataOptions::HttpTokens::kRequired ? "required" : "optional";
  options["http_endpoint"] = in.http_endpoint_enabled ? "enabled" : "disabled";
  options["hop_limit"] = int{in.hop_limit};
  options["instance_metadata_tags"] = in.tags_enabled ? "enabled" : "disabled";
  o["metadata_options"] = std::move(options);
}

void MetadataOptionsToText(const MetadataOptions& in, json_writer::Writer& w) {
  w.Key("metadata_options");
  w.BeginObject();
  w.Key("http_tokens");
  w.String(in.http_tokens == MetadataOptions::HttpTokens::kRequired ? "required" : "optional");
  w.Key("http_endpoint");
  w.String(in.http_endpoint_enabled ? "enabled" : "disabled");
  w.Key("hop_limit");
  w.Int(in.hop_limit);
  w.Key("instance_metadata_tags");
  w.String(in.tags_enabled ? "enabled" : "disabled");
  w.EndObject();
}

}  // namespace openimds::model
