#pragma once

#include <vector>

#include <boost/json/fwd.hpp>

#include "common/status.h"
#include "model/instance.h"
#include "model/json_reader.h"
#include "model/json_writer.h"

// The record's network interfaces ("nics", docs/instance.md "NIC"): JSON,
// canonical form and checks. Internal to the model module.
namespace openimds::model {

// "nics": an array of NIC objects; types only (values are checked by
// ValidateNics).
common::Status ReadNics(const boost::json::value& v, const json_reader::Path& at,
                        std::vector<Nic>& out);

// MAC lower case, every address and CIDR that parses in its canonical text.
void CanonicaliseNic(Nic& nic);

// One NIC on its own: MAC, device_number and network_card_index in 0..127,
// names, address and CIDR syntax, security groups; then the parts' checks of
// their NIC fields (record_part.h).
common::Status CheckNic(const json_reader::Path& at, const Nic& nic);

// Every NIC (CheckNic), then what must be unique across them: device
// numbers, MACs, and each address in the whole list ("listed twice (also at
// /nics/N/...)"). With `check_order`, NICs out of device_number order are
// refused too ("Normalize sorts"); FromJson checks before it sorts, so that
// indexes in messages match its input.
common::Status ValidateNics(const std::vector<Nic>& nics, bool check_order);

// Stable, by device_number.
void SortNics(std::vector<Nic>& nics);

// The NIC's members, then its parts' (record_part.h).
boost::json::object NicToJson(const Nic& nic);
// The same members as NicToJson, in the same order, as text.
void NicToText(json_writer::Writer& w, const Nic& nic);

}  // namespace openimds::model
