// Heap bytes per instance, as the catalog holds a fleet: reads NDJSON records
// (bench/scale_gen's output), parses each the way the store's load path does,
// and adds it to a catalog snapshot. Prints heap bytes per instance (glibc's
// mallinfo2, so malloc's per-chunk overhead is included) for the records alone
// and with the catalog's indexes, beside the user-data bytes they hold.
//
//   scale_gen fleet 100000 /tmp/f.ndjson && model_memory /tmp/f.ndjson
#include <malloc.h>

#include <cstdio>
#include <fstream>
#include <memory>
#include <string>
#include <vector>

#include "catalog/catalog.h"
#include "model/instance.h"
#include "model/instance_json.h"

namespace {

size_t HeapInUse() {
  malloc_trim(0);
  const struct mallinfo2 mi = mallinfo2();
  return mi.uordblks + mi.hblkhd;
}

}  // namespace

int main(int argc, char** argv) {
  if (argc != 2) {
    std::fprintf(stderr, "usage: model_memory FILE.ndjson\n");
    return 2;
  }
  std::vector<std::string> lines;
  {
    std::ifstream in(argv[1]);
    for (std::string line; std::getline(in, line);) lines.push_back(std::move(line));
  }
  const size_t n = lines.size();
  if (n == 0) {
    std::fprintf(stderr, "%s: no records\n", argv[1]);
    return 1;
  }
  std::vector<std::shared_ptr<const openimds::model::Instance>> records;
  records.reserve(n);
  const size_t base = HeapInUse();
  size_t user_data = 0;
  for (const std::string& line : lines) {
    auto parsed = openimds::model::FromJsonText(line);
    if (!parsed.ok()) {
      std::fprintf(stderr, "%s\n", parsed.status().ToString().c_str());
      return 1;
    }
    if (parsed->user_data) user_data += parsed->user_data->size();
    records.push_back(std::make_shared<const openimds::model::Instance>(std::move(*parsed)));
  }
  const size_t with_records = HeapInUse();
  openimds::catalog::SnapshotBuilder builder;
  for (const auto& r : records) builder.Add({r, 1});
  const size_t with_catalog = HeapInUse();
  const double per = 1.0 / static_cast<double>(n);
  std::printf("instances                     %zu\n", n);
  std::printf("sizeof(model::Instance)       %zu B\n", sizeof(openimds::model::Instance));
  std::printf("sizeof(model::Nic)            %zu B\n", sizeof(openimds::model::Nic));
  std::printf("user-data per instance        %.0f B\n", static_cast<double>(user_data) * per);
  std::printf("records per instance          %.0f B (%.0f B besides user-data)\n",
              static_cast<double>(with_records - base) * per,
              static_cast<double>(with_records - base - user_data) * per);
  std::printf("catalog indexes per instance  %.0f B\n",
              static_cast<double>(with_catalog - with_records) * per);
  std::printf("total besides user-data       %.0f B\n",
              static_cast<double>(with_catalog - base - user_data) * per);
  return 0;
}
