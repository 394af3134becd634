// libFuzzer target: postgres::ClassifySql (codecs/postgres/classify.h), which reads the SQL text
// of every Query and Parse message a client sends when transaction pooling is on.
//
// Input layout: the whole input is the text (NUL bytes included, as a client may send them).
// The seed corpus (tests/fuzz/corpus/postgres_classify_fuzz/) holds one statement of each kind the
// classifier knows, and pgbench's.
//
// Invariants (a violation traps): no crash; pins and unpins use only the kPinReasonCount defined
// bits; a statement text (at most 200 bytes, no whitespace at either end) comes with pins and only
// with them; read-back names are non-empty, have no ASCII upper case and appear once; text the
// prefilter clears classifies empty, and so does its parse tree (ClassifySqlWithParser) unless the
// grammar rejects it, since a prefilter that clears what the parser would pin is a bug. Classified
// as a simple Query too (SQL-level prepared statements, codecs/postgres/sql_statements.h): the
// ops round-trip through their note encoding and only PREPARE carries a text.

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "codecs/api/session.h"
#include "codecs/postgres/classify.h"
#include "codecs/postgres/parse_tree.h"
#include "tests/fuzz/fuzz_driver.h"

namespace wirepool::fuzz {
namespace {

using codec::PinSet;
using codec::RequestEffects;

constexpr PinSet kDefinedPins = (PinSet{1} << codec::kPinReasonCount) - 1;

bool IsSpace(char c) { return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\f'; }

void CheckEffects(const RequestEffects& e) {
  Check((e.pins & ~kDefinedPins) == 0, "pins outside the defined reasons");
  Check((e.unpins & ~kDefinedPins) == 0, "unpins outside the defined reasons");
  Check((e.pins != 0) == !e.statement.empty(), "statement text without pins, or pins without");
  Check(e.statement.size() <= 200, "statement text longer than 200 bytes");
  Check(e.statement.empty() || (!IsSpace(e.statement.front()) && !IsSpace(e.statement.back())),
        "statement text not trimmed");
  for (size_t i = 0; i < e.read_back.size(); ++i) {
    const std::string& name = e.read_back[i];
    Check(!name.empty(), "empty read-back name");
    for (char c : name) {
      Check(c < 'A' || c > 'Z', "read-back name with upper case");
    }
    for (size_t j = 0; j < i; ++j) {
      Check(e.read_back[j] != name, "read-back name twice");
    }
  }
}

}  // namespace
}  // namespace wirepool::fuzz

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace wirepool;  // NOLINT(build/namespaces): one target, one API
  // A heap copy of exactly the text, so that ASan sees any read past its end.
  const std::string text(reinterpret_cast<const char*>(data), size);
  const std::string_view sql(text);
  const codec::RequestEffects effects = codec::postgres::ClassifySql(sql);
  fuzz::CheckEffects(effects);
  // As a simple Query (SQL-level prepared statements followed, sql_statements.h): the ops survive
  // their trip through a StatementNote's key, hold no NUL, and text the prefilter clears has none.
  std::vector<codec::postgres::SqlOp> ops;
  const codec::RequestEffects query_effects = codec::postgres::ClassifySql(sql, &ops);
  fuzz::CheckEffects(query_effects);
  fuzz::Check(ops.empty() || ops.back().kind != codec::postgres::SqlOp::kOther,
              "trailing op that does nothing");
  for (const codec::postgres::SqlOp& op : ops) {
    fuzz::Check(op.name.find('\0') == std::string::npos && op.text.find('\0') == std::string::npos,
                "op with a NUL byte");
    fuzz::Check((op.kind == codec::postgres::SqlOp::kPrepare) == !op.text.empty(),
                "PREPARE op without its text, or text on another op");
  }
  codec::postgres::SqlOps sent{false, ops};
  fuzz::Check(codec::postgres::DecodeSqlOps(codec::postgres::EncodeSqlOps(sent)) == sent,
              "ops changed on their way through a note");
  if (codec::postgres::PrefilterClears(sql)) {
    fuzz::Check(effects.empty(), "prefilter cleared, effects not empty");
    fuzz::Check(ops.empty(), "prefilter cleared, ops not empty");
    const codec::RequestEffects parsed = codec::postgres::ClassifySqlWithParser(sql);
    fuzz::CheckEffects(parsed);
    codec::postgres::ParseTree tree;
    fuzz::Check(parsed.empty() || !tree.ParseSql(sql), "prefilter cleared what the parser pins");
  }
  return 0;
}
