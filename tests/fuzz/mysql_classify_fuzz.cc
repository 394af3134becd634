// libFuzzer target: the MySQL query classifier (codecs/mysql/classify.h), which reads the text of
// every client COM_QUERY and COM_STMT_PREPARE when transaction pooling is on.
//
// Input layout: byte 0 picks the sql_mode (bit 0 NO_BACKSLASH_ESCAPES, bit 1 ANSI_QUOTES); the
// rest is the query text.
//
// Invariants (a violation traps): only the defined pin bits are set or cleared; `statement` is
// set exactly when a pin is, and holds at most 200 bytes; read_back names are non-empty, lower
// case and listed once; reset_params stays false (MySQL has no SQL form of it); a text the
// prefilter clears has no effects, and if the lexer can read it, the lexer's classification finds
// none either (the prefilter is only a shortcut).

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

#include "codecs/api/session.h"
#include "codecs/mysql/classify.h"
#include "codecs/mysql/sql_scan.h"
#include "tests/fuzz/fuzz_driver.h"

namespace wirepool::fuzz {
namespace {

using codec::RequestEffects;

constexpr codec::PinSet kDefinedPins = (codec::PinSet{1} << codec::kPinReasonCount) - 1;
constexpr size_t kMaxStatementBytes = 200;
// The classifier's own token cap: texts of more tokens are unreadable to it.
constexpr size_t kMaxTokens = size_t{1} << 16;

void CheckEffects(const RequestEffects& e) {
  Check((e.pins & ~kDefinedPins) == 0, "an undefined pin bit");
  Check((e.unpins & ~kDefinedPins) == 0, "an undefined unpin bit");
  Check(e.statement.empty() == (e.pins == 0), "statement without a pin, or a pin without one");
  Check(e.statement.size() <= kMaxStatementBytes, "statement over 200 bytes");
  Check(!e.reset_params, "reset_params from MySQL text");
  for (size_t i = 0; i < e.read_back.size(); ++i) {
    const std::string& name = e.read_back[i];
    Check(!name.empty(), "an empty read_back name");
    Check(std::none_of(name.begin(), name.end(), [](char c) { return c >= 'A' && c <= 'Z'; }),
          "a read_back name not in lower case");
    Check(std::find(e.read_back.begin() + static_cast<std::ptrdiff_t>(i) + 1, e.read_back.end(),
                    name) == e.read_back.end(),
          "a read_back name listed twice");
  }
}

}  // namespace
}  // namespace wirepool::fuzz

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace wirepool;  // NOLINT(build/namespaces): one target, one API
  if (size == 0) {
    return 0;
  }
  const codec::mysql::sql::SqlMode mode{.no_backslash_escapes = (data[0] & 1) != 0,
                                        .ansi_quotes = (data[0] & 2) != 0};
  // A heap copy of exactly the text, so that ASan sees any read past its end.
  const std::string text(reinterpret_cast<const char*>(data) + 1, size - 1);
  const std::string_view sql(text);

  const codec::RequestEffects effects = codec::mysql::ClassifySql(sql, mode);
  fuzz::CheckEffects(effects);
  if (codec::mysql::PrefilterClears(sql)) {
    fuzz::Check(effects.empty() && effects.statement.empty(), "cleared text with effects");
    if (codec::mysql::sql::Tokenize(sql, fuzz::kMaxTokens, mode).has_value()) {
      const codec::RequestEffects lexed = codec::mysql::ClassifySqlUnfiltered(sql, mode);
      fuzz::CheckEffects(lexed);
      fuzz::Check(lexed.empty(), "the prefilter cleared what the lexer pins");
    }
  }
  return 0;
}
