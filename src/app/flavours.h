#pragma once

#include <memory>
#include <string>
#include <vector>

#include "flavour/module.h"

namespace openimds::app {

// Every flavour this binary serves, in precedence order: the first whose
// Flavour owns a request renders it. A new flavour is one line here.
std::vector<std::unique_ptr<flavour::Module>> FlavourModules();

// The request headers the flavours' guests send (Module::GuestHeaders), in
// list order without repeats: what `openimds proxy` forwards besides plain
// HTTP's.
std::vector<std::string> FlavourGuestHeaders(
    const std::vector<std::unique_ptr<flavour::Module>>& modules);

}  // namespace openimds::app
