#pragma once

#include "catalog/catalog.h"
#include "common/status.h"
#include "store/store.h"

namespace openimds::admin {

// Publishes every instance in `store` as `catalog`'s new snapshot (replacing
// whatever it held), with each instance's store revision. Called by app/ at
// start-up, before any listener accepts, and again whenever the catalog must be
// rebuilt from the truth.
//
// On error the catalog is left unchanged and the store's Status is returned
// (Unavailable when the store is away, Internal for a corrupt row).
common::Status LoadCatalog(store::Store& store, catalog::Catalog& catalog);

}  // namespace openimds::admin
