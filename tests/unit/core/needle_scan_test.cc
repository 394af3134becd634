#include "core/needle_scan.h"

#include <cctype>
#include <random>
#include <string>
#include <string_view>
#include <vector>

#include "gtest/gtest.h"

namespace wirepool::core {
namespace {

constexpr NeedleScan kScan({";", "&\"", "ad", "se", "pg"});
const std::vector<std::string> kStarts = {";", "&\"", "ad", "se", "pg"};

// What Next must find, one position at a time.
size_t Reference(std::string_view text, size_t from) {
  for (size_t i = from; i < text.size(); ++i) {
    for (const std::string& s : kStarts) {
      bool match = i + s.size() <= text.size();
      for (size_t k = 0; match && k < s.size(); ++k) {
        const char c = text[i + k];
        match = (std::isalpha(static_cast<unsigned char>(s[k])) != 0
                     ? std::tolower(static_cast<unsigned char>(c)) == s[k]
                     : c == s[k]);
      }
      if (match) {
        return i;
      }
    }
  }
  return std::string_view::npos;
}

TEST(NeedleScanTest, FindsNeedlesInAnyCaseAndNothingElse) {
  const std::string q = "SELECT abalance FROM pgbench_accounts WHERE aid = 12345";
  EXPECT_EQ(kScan.Next(q, 6), q.find("pg"));
  EXPECT_EQ(kScan.Next("select 1", 0), 0u);  // "se" of the keyword itself, from 0
  EXPECT_EQ(kScan.Next("select 1", 1), std::string_view::npos);
  EXPECT_EQ(kScan.Next("x PG_advisory", 0), 2u);
  EXPECT_EQ(kScan.Next("x AD", 0), 2u);
  EXPECT_EQ(kScan.Next("x &\"", 0), 2u);
  EXPECT_EQ(kScan.Next("x &'", 0), std::string_view::npos);
  // Not letters: no case folding ('\x1b' | 0x20 is ';', '\x06' | 0x20 is '&').
  EXPECT_EQ(kScan.Next("x\x1b\x06\"", 0), std::string_view::npos);
}

TEST(NeedleScanTest, OneByteNeedleAtTheLastByteAndTwoByteNeedlesNotPastTheEnd) {
  for (size_t len = 1; len < 40; ++len) {
    std::string text(len - 1, 'x');
    EXPECT_EQ(kScan.Next(text + ";", 0), len - 1) << len;
    EXPECT_EQ(kScan.Next(text + "p", 0), std::string_view::npos) << len;
    EXPECT_EQ(kScan.Next(text + "pg", 0), len - 1) << len;
  }
  EXPECT_EQ(kScan.Next("", 0), std::string_view::npos);
  EXPECT_EQ(kScan.Next("ab;", 5), std::string_view::npos);
}

TEST(NeedleScanTest, AgreesWithAByteByByteScanOnRandomText) {
  std::mt19937 rng(20261129);
  const std::string alphabet = "aAdDsSeEpPgG;&\"\x1b\x06\xff" + std::string(40, 'x');
  std::uniform_int_distribution<size_t> pick(0, alphabet.size() - 1);
  std::uniform_int_distribution<size_t> length(0, 70);
  for (int round = 0; round < 20000; ++round) {
    std::string text(length(rng), ' ');
    for (char& c : text) {
      c = alphabet[pick(rng)];
    }
    // Every position the reference finds, in order, from each start the callers use.
    for (size_t from = 0; from <= text.size(); from = Reference(text, from) + 1) {
      ASSERT_EQ(kScan.Next(text, from), Reference(text, from)) << "text: " << text;
      if (Reference(text, from) == std::string_view::npos) {
        break;
      }
    }
  }
}

}  // namespace
}  // namespace wirepool::core
