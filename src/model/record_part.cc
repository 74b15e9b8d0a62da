#include "model/record_part.h"

#include <iterator>

#include "model/ec2_fields.h"
#include "model/guest_config_json.h"

namespace openimds::model {
namespace {

// The parts of the record, one line each. Their order is the order of their
// members in ToJson's output and of their checks; a new part goes last, so
// that every record already stored is written as before.
constexpr const RecordPart* kParts[] = {
    &kGuestConfigPart,  // guest_config_json.h
    &kEc2Part,          // ec2_fields.h
};

// The field named `key` among the parts' tables (`table`: `fields` or
// `nic_fields`), searched from the position (part, field) on, wrapping
// around; a match leaves the position on the field after it.
template <typename Field>
const Field* Find(std::span<const Field> RecordPart::*table, std::string_view key, size_t& part,
                  size_t& field) {
  constexpr size_t kCount = std::size(kParts);
  // The start's part twice: from `field` first, from its beginning last.
  for (size_t step = 0; step <= kCount; ++step) {
    const size_t p = (part + step) % kCount;
    const std::span<const Field> fields = kParts[p]->*table;
    for (size_t f = step == 0 ? field : 0; f < fields.size(); ++f) {
      if (fields[f].name != key) continue;
      part = p;
      field = f + 1;
      return &fields[f];
    }
  }
  return nullptr;
}

}  // namespace

std::span<const RecordPart* const> RecordParts() { return kParts; }

void ForEachPartCallerAddress(const Instance& instance, void* context,
                              void (*fn)(void* context, const common::IpAddress& ip)) {
  for (const RecordPart* part : kParts) {
    if (part->caller_addresses != nullptr) part->caller_addresses(instance, context, fn);
  }
}

bool PartFieldReader::Read(std::string_view key, const boost::json::value& value,
                           const json_reader::Path& at, common::Status& status) {
  const PartField* f = Find(&RecordPart::fields, key, part_, field_);
  if (f == nullptr) return false;
  status = f->read(value, at, in_, parse_);
  return true;
}

bool NicPartFieldReader::Read(std::string_view key, const boost::json::value& value,
                              const json_reader::Path& at, common::Status& status) {
  const NicPartField* f = Find(&RecordPart::nic_fields, key, part_, field_);
  if (f == nullptr) return false;
  status = f->read(value, at, nic_);
  return true;
}

}  // namespace openimds::model
