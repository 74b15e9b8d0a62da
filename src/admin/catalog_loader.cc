#include "admin/catalog_loader.h"

#include <memory>
#include <utility>
#include <vector>

namespace openimds::admin {

common::Status LoadCatalog(store::Store& store, catalog::Catalog& catalog) {
  auto listed = store.List();
  if (!listed.ok()) return listed.status();
  std::vector<catalog::Entry> entries;
  entries.reserve(listed->size());
  for (auto& stored : *listed) {
    entries.push_back(catalog::Entry{
        std::make_shared<const model::Instance>(std::move(stored.instance)), stored.revision});
  }
  catalog.ReplaceAll(std::move(entries));
  return common::Status::Ok();
}

}  // namespace openimds::admin
