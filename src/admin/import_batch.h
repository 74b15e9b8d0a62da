#pragma once

#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "common/result.h"
#include "model/instance.h"
#include "model/record_limits.h"

namespace openimds::admin {

// The records of one import body (NDJSON: one record per line, blank lines
// skipped), parsed and checked against each other. Internal to the admin
// module.
struct ImportBatch {
  // Each made on the thread that parsed it, beside its own fields: the
  // records outlive the import (the store writes them and the catalog holds
  // them), and placed among the import's short-lived allocations they would
  // leave holes in the heap behind them.
  std::vector<std::shared_ptr<model::Instance>> instances;
  std::vector<int> lines;  // the body's line number of instances[i]
  std::unordered_map<std::string, int> line_of_id;  // id -> its line
};

// Parses every line on up to `threads` threads (the JSON is most of an
// import's cost), then checks them in order, so the refusal names the first
// bad line in the file whichever thread parsed it: "line N: ..." with the
// line's own refusal (InvalidArgument, or PayloadTooLarge for a record over
// `limits`, when `exceeded` is set to the limit), an id already on an
// earlier line (InvalidArgument), an address an earlier line claims in the
// same network (Conflict). A body without records is InvalidArgument.
common::Result<ImportBatch> ParseImportBody(std::string_view body,
                                            const model::RecordLimits& limits, unsigned threads,
                                            std::optional<model::Limit>& exceeded);

}  // namespace openimds::admin
