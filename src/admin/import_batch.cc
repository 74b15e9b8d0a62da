#include "admin/import_batch.h"

#include <algorithm>
#include <map>
#include <utility>

#include "admin/admin_http.h"
#include "common/parallel_for.h"
#include "model/instance_json.h"

namespace openimds::admin {
namespace {

using common::Status;

bool IsBlank(std::string_view line) {
  return std::all_of(line.begin(), line.end(),
                     [](char c) { return c == ' ' || c == '\t' || c == '\r'; });
}

}  // namespace

common::Result<ImportBatch> ParseImportBody(std::string_view body,
                                            const model::RecordLimits& limits, unsigned threads,
                                            std::optional<model::Limit>& exceeded) {
  // The lines, then their records parsed on a few threads, then checked in
  // order.
  struct Line {
    int number;
    std::string_view text;
    common::Result<model::Instance> parsed = common::Internal("not parsed");
    std::shared_ptr<model::Instance> record;  // once `parsed` passed its checks
    std::optional<model::Limit> exceeded;  // the limit `parsed` was refused for
  };
  std::vector<Line> body_lines;
  std::string_view rest = body;
  for (int line_number = 1; !rest.empty(); ++line_number) {
    const size_t newline = rest.find('\n');
    std::string_view line = rest.substr(0, newline);
    rest = newline == std::string_view::npos ? std::string_view() : rest.substr(newline + 1);
    if (IsBlank(line)) continue;
    body_lines.push_back(
        Line{line_number, line, common::Internal("not parsed"), nullptr, std::nullopt});
  }
  common::ParallelFor(
      body_lines.size(), threads,
      [&](size_t i) {
        Line& line = body_lines[i];
        if (Status s = model::CheckRecordBytes(line.text.size(), limits); !s.ok()) {
          line.parsed = std::move(s);
          line.exceeded = model::Limit::kRecordBytes;
          return;
        }
        line.parsed = model::FromJsonText(line.text);
        model::Limit over = model::Limit::kRecordBytes;
        if (!line.parsed.ok()) {
          line.parsed = common::InvalidArgument(line.parsed.status().message());
        } else if (Status s = model::CheckLimits(*line.parsed, limits, &over); !s.ok()) {
          line.parsed = std::move(s);
          line.exceeded = over;
        } else {
          line.record = std::make_shared<model::Instance>(std::move(*line.parsed));
        }
      },
      /*min_n=*/64, /*chunk=*/16);

  ImportBatch batch;
  std::vector<std::shared_ptr<model::Instance>>& instances = batch.instances;
  std::vector<int>& lines = batch.lines;  // line number of instances[i]
  instances.reserve(body_lines.size());
  lines.reserve(body_lines.size());
  std::unordered_map<std::string, int>& line_of_id = batch.line_of_id;
  // (network, address) -> index into `instances`
  std::map<std::pair<std::string, std::string>, size_t> claimed;
  for (Line& line : body_lines) {
    const int line_number = line.number;
    const std::string where = "line " + std::to_string(line_number) + ": ";
    if (!line.parsed.ok()) {
      exceeded = line.exceeded;
      return Status(line.parsed.status().code(), where + line.parsed.status().message());
    }
    const std::shared_ptr<model::Instance>& instance = line.record;
    auto [it, inserted] = line_of_id.emplace(instance->id, line_number);
    if (!inserted) {
      return common::InvalidArgument(where + "/id: " + Quote(instance->id) +
                                     " is already on line " + std::to_string(it->second));
    }
    for (const auto& address : model::CallerAddresses(*instance)) {
      auto [claim, fresh] =
          claimed.emplace(std::make_pair(instance->network, address), instances.size());
      if (!fresh) {
        return common::Conflict(where + "address " + address + " in network " +
                                Quote(instance->network) + " is also claimed by line " +
                                std::to_string(lines[claim->second]) + " (instance " +
                                Quote(instances[claim->second]->id) + ")");
      }
    }
    instances.push_back(std::move(line.record));
    lines.push_back(line_number);
  }
  if (instances.empty()) return common::InvalidArgument("import: the body holds no instances");
  return batch;
}

}  // namespace openimds::admin
