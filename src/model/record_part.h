#pragma once

#include <cstddef>
#include <span>
#include <string_view>

#include <boost/json/fwd.hpp>

#include "common/ip_address.h"
#include "common/status.h"
#include "model/instance.h"
#include "model/instance_json.h"  // ParseOptions
#include "model/json_reader.h"
#include "model/json_writer.h"

namespace openimds::model {

class LimitChecker;

// A member of a part's JSON at the record's top level: `read` puts `v` (found
// at `at`) into `in`. Types only; values are checked by the part's
// `validate`.
struct PartField {
  std::string_view name;
  common::Status (*read)(const boost::json::value& v, const json_reader::Path& at, Instance& in,
                         const ParseOptions& parse);
};

// A member of a part's JSON inside each NIC object.
struct NicPartField {
  std::string_view name;
  common::Status (*read)(const boost::json::value& v, const json_reader::Path& at, Nic& nic);
};

// A part of the record that keeps its fields to itself: one cloud's own
// fields (EC2's: ec2_fields.h), or a group that only some flavours render
// (the guest configuration: guest_config_json.h). Its struct sits behind one
// Box in Instance (its fields of each NIC, if any, in Nic); everything the
// record's JSON mapping does with it goes through this table, defined in the
// part's own file pair and listed once in RecordParts() (record_part.cc).
//
// The record's mapping calls the part at fixed places, after doing its own:
//   FromJson      a member the record (or a NIC object) does not name is
//                 looked up in `fields` (`nic_fields`), in document order with
//                 the record's own, so the first offender in the text is the
//                 one reported; then as Normalize and Validate below (NICs
//                 checked before they are sorted).
//   Normalize     `canonicalise`: canonical spellings, times in whole seconds;
//                 it frees the part's Box when that holds only defaults.
//   Validate      `check_nic` at the end of each NIC's checks, `validate`
//                 after the record's own; messages start with the JSON pointer.
//   CheckLimits   `check_nic_limits` after each NIC's address lists (a part's
//                 NIC lists are address lists), `check_limits` after the
//                 record's own fields.
//   CallerAddresses, ForEachCallerAddress  `caller_addresses` after the
//                 NICs' addresses.
//   ToJson, ToJsonText  `nic_to_json`/`nic_to_text` at the end of each NIC
//                 object, `to_json`/`to_text` after the record's own members;
//                 both writers write the same members in the same order and
//                 omit what is at its default; `text_size` (beside ToJsonText's
//                 own guess) is how many bytes `to_text` may write beyond a
//                 few hundred, for a part with large members, so the output
//                 string grows once.
// Parts are called in the order of RecordParts(). A part's member names share
// the record's namespace: they differ from the record's own and from every
// other part's (tests/model/record_part_test.cc checks). Hooks a part does
// not need are null.
struct RecordPart {
  std::string_view name;  // "ec2", "guest"
  std::span<const PartField> fields = {};
  std::span<const NicPartField> nic_fields = {};

  void (*canonicalise)(Instance& in) = nullptr;

  common::Status (*check_nic)(const json_reader::Path& at, const Nic& nic) = nullptr;
  common::Status (*validate)(const Instance& in) = nullptr;

  common::Status (*check_nic_limits)(const json_reader::Path& at, const Nic& nic,
                                     const LimitChecker& limits) = nullptr;
  common::Status (*check_limits)(const Instance& in, const LimitChecker& limits) = nullptr;

  void (*nic_to_json)(const Nic& nic, boost::json::object& o) = nullptr;
  void (*nic_to_text)(const Nic& nic, json_writer::Writer& w) = nullptr;
  void (*to_json)(const Instance& in, boost::json::object& o) = nullptr;
  void (*to_text)(const Instance& in, json_writer::Writer& w) = nullptr;
  size_t (*text_size)(const Instance& in) = nullptr;

  // The addresses the part's fields say the instance calls from (a static
  // address the guest is told to configure), parsed, each passed to
  // fn(context, ip) in order; after the NICs' (ForEachCallerAddress). They
  // join the store's unique (network, address) index and the catalog's.
  void (*caller_addresses)(const Instance& in, void* context,
                           void (*fn)(void* context, const common::IpAddress& ip)) = nullptr;
};

// Every part of the record, in the order their members are written and their
// checks run.
std::span<const RecordPart* const> RecordParts();

// The parts' members at the record's top level, as the record's ReadObject
// table reads them (json_reader::MoreFields), into `in`.
class PartFieldReader final : public json_reader::MoreFields {
 public:
  PartFieldReader(Instance& in, const ParseOptions& parse) : in_(in), parse_(parse) {}
  bool Read(std::string_view key, const boost::json::value& value, const json_reader::Path& at,
            common::Status& status) override;

 private:
  Instance& in_;
  const ParseOptions& parse_;
  size_t part_ = 0;   // where the next search starts: the field after the
  size_t field_ = 0;  // last one found (records list them in table order)
};

// The parts' members inside a NIC object, into `nic`.
class NicPartFieldReader final : public json_reader::MoreFields {
 public:
  explicit NicPartFieldReader(Nic& nic) : nic_(nic) {}
  bool Read(std::string_view key, const boost::json::value& value, const json_reader::Path& at,
            common::Status& status) override;

 private:
  Nic& nic_;
  size_t part_ = 0;
  size_t field_ = 0;
};

}  // namespace openimds::model
