// model::Str (the model's text type), its intern table and Pack, StrList, and
// model::Box.
#include "model/str.h"
#include "model/str_list.h"

#include <gtest/gtest.h>

#include <atomic>
#include <map>
#include <string>
#include <thread>
#include <unordered_set>
#include <vector>

#include "model/box.h"
#include "model/instance.h"
#include "model/instance_json.h"

namespace openimds::model {
namespace {

TEST(StrTest, EmptyIsNullAndReadsAsEmptyText) {
  Str s;
  EXPECT_TRUE(s.empty());
  EXPECT_EQ(s.size(), 0u);
  EXPECT_STREQ(s.c_str(), "");
  EXPECT_EQ(s, "");
  EXPECT_TRUE(Str("").empty());
  EXPECT_TRUE(Str::Interned("").empty());
}

TEST(StrTest, HoldsAnyBytesAndCompares) {
  const std::string bytes("a\0b\xff", 4);
  const Str s(bytes);
  EXPECT_EQ(s.size(), 4u);
  EXPECT_EQ(s.view(), bytes);
  EXPECT_EQ(s, bytes);
  EXPECT_EQ(s.c_str()[4], '\0');  // NUL-terminated after the text
  EXPECT_LT(Str("abc"), Str("abd"));
  EXPECT_LT(Str("ab"), "abc");
  EXPECT_EQ(std::string("x-") + Str("y"), "x-y");
  EXPECT_EQ(Str("host").find('s'), 2u);
  EXPECT_EQ(Str("10.0.0.5/24").substr(0, Str("10.0.0.5/24").find('/')), "10.0.0.5");
  std::map<Str, int, std::less<>> m{{"b", 2}, {"a", 1}};
  EXPECT_EQ(m.find(std::string_view("b"))->second, 2);
  EXPECT_EQ(std::hash<Str>()(Str("k")), std::hash<std::string_view>()("k"));
}

TEST(StrTest, CopiesShareTheTextAndOutliveTheOriginal) {
  Str copy;
  {
    const Str original(std::string(100, 'q'));
    copy = original;
    EXPECT_EQ(copy.data(), original.data());
  }
  EXPECT_EQ(copy, std::string(100, 'q'));
  Str moved = std::move(copy);
  EXPECT_TRUE(copy.empty());  // NOLINT: a moved-from Str is empty
  EXPECT_EQ(moved.size(), 100u);
}

TEST(StrTest, InternedValuesShareOneBlock) {
  const Str a = Str::Interned("eu-west-1-interned-test");
  const Str b = Str::Interned(std::string("eu-west-1-interned-test"));
  const Str c("eu-west-1-interned-test");  // not interned: its own copy
  EXPECT_EQ(a.data(), b.data());
  EXPECT_NE(a.data(), c.data());
  EXPECT_EQ(a, c);
}

TEST(StrTest, PackedTextsShareOneAllocationAndOutliveEachOther) {
  Str a(std::string(40, 'a')), b("bee"), interned = Str::Interned("packed-interned"), empty;
  const char* interned_data = interned.data();
  Str* fields[] = {&a, &b, &interned, &empty};
  Str::Pack(fields, 4);
  EXPECT_EQ(a, std::string(40, 'a'));
  EXPECT_EQ(b, "bee");
  EXPECT_STREQ(b.c_str(), "bee");
  EXPECT_EQ(interned.data(), interned_data);  // interned text stays shared
  EXPECT_TRUE(empty.empty());
  // b lives in the same allocation as a, right after it.
  EXPECT_GT(b.data(), a.data());
  EXPECT_LT(b.data(), a.data() + 64);
  Str keep_b = b;
  a = Str();
  b = Str();
  EXPECT_EQ(keep_b, "bee");  // the allocation lives while any of its texts does
  Str again = keep_b;
  Str* more[] = {&again};
  Str::Pack(more, 1);  // already packed: unchanged
  EXPECT_EQ(again.data(), keep_b.data());
}

TEST(StrTest, PackSharesEqualTextsOnce) {
  Str hostname("ip-10-0-0-5.ec2.internal"), local("ip-10-0-0-5.ec2.internal"), other("x-other");
  Str* fields[] = {&hostname, &other, &local};
  Str::Pack(fields, 3);
  EXPECT_EQ(hostname.data(), local.data());
  EXPECT_EQ(local, "ip-10-0-0-5.ec2.internal");
  EXPECT_EQ(other, "x-other");
  // More fields than one pass takes (64) still all end up packed and intact.
  std::vector<Str> many;
  for (int i = 0; i < 150; ++i) many.emplace_back("field-" + std::to_string(i));
  std::vector<Str*> pointers;
  for (Str& s : many) pointers.push_back(&s);
  Str::Pack(pointers.data(), pointers.size());
  for (int i = 0; i < 150; ++i) EXPECT_EQ(many[i], "field-" + std::to_string(i));
  EXPECT_EQ(many[1].data(), many[0].data() + 16);  // neighbours in one allocation
}

TEST(StrTest, TheInternTableForgetsWhatNobodyHolds) {
  const Str kept = Str::Interned("kept-across-sweeps");
  const size_t before = Str::InternedCount();
  // Far more distinct values than the table held, each dropped at once:
  // sweeps must free them, so the table stays near its live size.
  for (int i = 0; i < 200000; ++i) Str::Interned("transient-" + std::to_string(i));
  EXPECT_LT(Str::InternedCount(), before + 200000 / 4);
  EXPECT_EQ(Str::Interned("kept-across-sweeps").data(), kept.data());
}

TEST(StrTest, ThreadsInterningAndDroppingTheSameValuesAgree) {
  // Each thread interns the same 1000 values over and over, keeping every
  // tenth, while sweeps run under it: every Str it keeps must still read its
  // own text, and equal values interned while one is held share its block.
  constexpr int kThreads = 4;
  std::atomic<int> mismatches{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([t, &mismatches] {
      std::vector<std::pair<std::string, Str>> kept;
      for (int round = 0; round < 50; ++round) {
        for (int i = 0; i < 1000; ++i) {
          std::string text = "shared-" + std::to_string(i);
          Str s = Str::Interned(text);
          if (s != text) mismatches.fetch_add(1);
          if ((i + round + t) % 10 == 0) kept.emplace_back(std::move(text), std::move(s));
        }
        // Distinct values force sweeps while the shared ones churn.
        for (int i = 0; i < 2000; ++i) Str::Interned("churn-" + std::to_string(t * 100000 + i));
      }
      for (const auto& [text, s] : kept) {
        if (s != text) mismatches.fetch_add(1);
        if (Str::Interned(text).data() != s.data()) mismatches.fetch_add(1);
      }
    });
  }
  for (auto& th : threads) th.join();
  EXPECT_EQ(mismatches.load(), 0);
}

TEST(StrListTest, BehavesAsTheVectorItReplaces) {
  StrList list;
  EXPECT_TRUE(list.empty());
  EXPECT_EQ(list.begin(), list.end());
  std::vector<std::string> reference;
  for (int i = 0; i < 40; ++i) {
    list.push_back("item-" + std::to_string(i));
    reference.push_back("item-" + std::to_string(i));
  }
  list.erase(list.begin() + 3, list.begin() + 10);
  reference.erase(reference.begin() + 3, reference.begin() + 10);
  list.erase(list.begin());
  reference.erase(reference.begin());
  ASSERT_EQ(list.size(), reference.size());
  for (size_t i = 0; i < list.size(); ++i) EXPECT_EQ(list[i], reference[i]) << i;
  StrList copy = list;
  EXPECT_EQ(copy, list);
  copy[0] = "changed";
  EXPECT_NE(copy, list);
  EXPECT_EQ(list.front(), reference.front());
  StrList moved = std::move(copy);
  EXPECT_TRUE(copy.empty());  // NOLINT: a moved-from list is empty
  EXPECT_EQ(moved.back(), reference.back());
  moved.clear();
  EXPECT_TRUE(moved.empty());
  EXPECT_EQ((StrList{"a", "b"}), (StrList{"a", "b"}));
  EXPECT_NE((StrList{"a", "b"}), (StrList{"a"}));
}

TEST(BoxTest, ReadsAnEmptyGroupWithoutMakingOne) {
  Box<Ec2Fields> box;
  EXPECT_FALSE(box.has_value());
  EXPECT_TRUE(box->ami_manifest_path.empty());
  EXPECT_TRUE(box->events.empty());
  EXPECT_FALSE(box.has_value());  // reading did not allocate
  box.mut().partition_number = 3;
  EXPECT_TRUE(box.has_value());
  Box<Ec2Fields> copy = box;  // deep copy
  copy.mut().partition_number = 4;
  EXPECT_EQ(box->partition_number, 3);
  EXPECT_NE(box, copy);
  copy.mut().partition_number = 0;
  copy.Compact();
  EXPECT_FALSE(copy.has_value());
  EXPECT_EQ(copy, Box<Ec2Fields>());
  box.Set(Ec2Fields{});
  EXPECT_FALSE(box.has_value());
}

TEST(BoxTest, ARecordWithoutEc2OrGuestFieldsHoldsNeitherGroup) {
  auto plain = FromJsonText(R"({"id":"i-1","region":"eu-west-1","network_config":{}})");
  ASSERT_TRUE(plain.ok()) << plain.status().ToString();
  EXPECT_FALSE(plain->ec2.has_value());
  EXPECT_FALSE(plain->guest.has_value());
  auto full = FromJsonText(R"({"id":"i-2","placement_group":"g","dedicated_cpus":[1]})");
  ASSERT_TRUE(full.ok()) << full.status().ToString();
  EXPECT_EQ(full->ec2->placement_group, "g");
  EXPECT_EQ(full->guest->dedicated_cpus, std::vector<int>{1});
}

TEST(BoxTest, RepeatedValuesOfParsedRecordsAreShared) {
  const char* text = R"({"id":"i-%d","region":"ap-south-2","tags":{"team":"payments"},)"
                     R"("nics":[{"mac":"02:00:00:00:00:0%d","vpc_id":"vpc-0abc",)"
                     R"("security_groups":["default"]}]})";
  char a_text[512], b_text[512];
  std::snprintf(a_text, sizeof(a_text), text, 1, 1);
  std::snprintf(b_text, sizeof(b_text), text, 2, 2);
  auto a = FromJsonText(a_text);
  auto b = FromJsonText(b_text);
  ASSERT_TRUE(a.ok() && b.ok());
  EXPECT_EQ(a->region.data(), b->region.data());
  EXPECT_EQ(a->tags.begin()->second.data(), b->tags.begin()->second.data());
  EXPECT_EQ(a->nics[0].vpc_id.data(), b->nics[0].vpc_id.data());
  EXPECT_EQ(a->nics[0].security_groups[0].data(), b->nics[0].security_groups[0].data());
  EXPECT_NE(a->id.data(), b->id.data());
}

}  // namespace
}  // namespace openimds::model
