#pragma once

#include <string>
#include <string_view>
#include <vector>

#include "model/str_list.h"

namespace openimds::flavour::ec2 {

// Appends one JSON object in EC2's pretty-print style (ec2.md §1.3):
//
//   {
//     "Code" : "Success",
//     "LastUpdated" : "2012-04-26T16:39:16Z"
//   }
//
// two-space indent, `" : "` between key and value, no trailing newline.
// This is the default pretty printer of Jackson (the JSON library EC2's
// output matches): arrays stay inline, so an array of objects is
// "[ {\n  ...\n}, {\n  ...\n} ]" and an empty one "[ ]".
// Members appear in the order they are added. Keys are written as given
// (callers pass literals); values are escaped. An object with no members is
// "{}". Not thread-safe; one writer per document.
class Ec2JsonObject {
 public:
  explicit Ec2JsonObject(std::string& out) : out_(out) { out_ += '{'; }
  Ec2JsonObject(const Ec2JsonObject&) = delete;
  Ec2JsonObject& operator=(const Ec2JsonObject&) = delete;

  Ec2JsonObject& String(std::string_view key, std::string_view value);
  Ec2JsonObject& Null(std::string_view key);
  // `value` as a string, or null when it is empty (e.g. kernelId).
  Ec2JsonObject& StringOrNull(std::string_view key, std::string_view value);
  // An array of strings inline, as EC2 prints them: [ "a", "b" ]; null when
  // `values` is empty (e.g. marketplaceProductCodes).
  Ec2JsonObject& StringArrayOrNull(std::string_view key, const model::StrList& values);
  // Appends the closing brace; call exactly once.
  void Close();

 private:
  void Key(std::string_view key);

  std::string& out_;
  bool empty_ = true;
};

// Appends `value` as a JSON string literal: quotes, backslashes and control
// characters escaped; other bytes (UTF-8 included) copied as they are.
void AppendJsonString(std::string_view value, std::string& out);

}  // namespace openimds::flavour::ec2
