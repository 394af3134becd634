// libFuzzer target: the MySQL SQL lexer (codecs/mysql/sql_scan.h), which reads the text of every
// client COM_QUERY that mentions KILL (and, with transaction pooling, classifies statements).
//
// Input layout: byte 0 picks the sql_mode (bit 0 NO_BACKSLASH_ESCAPES, bit 1 ANSI_QUOTES) and a
// token cap (bits 2-7: 0 means no cap, else 4 × the value); the rest is the query text.
//
// Invariants (a violation traps): every token is a non-empty view inside the input, tokens come
// in order without overlapping, a result never holds more tokens than the cap, statements hold
// no ';' token and none is empty, and IsKill / ParseKill never read outside a statement.

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

#include "codecs/mysql/sql_scan.h"

namespace {

void Check(bool ok) {
  if (!ok) {
    __builtin_trap();
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace wirepool::codec::mysql::sql;  // NOLINT(build/namespaces): one target, one API
  if (size == 0) {
    return 0;
  }
  SqlMode mode{.no_backslash_escapes = (data[0] & 1) != 0, .ansi_quotes = (data[0] & 2) != 0};
  size_t cap = (data[0] >> 2) == 0 ? SIZE_MAX : size_t{4} * (data[0] >> 2);
  // A heap copy of exactly the text, so that ASan sees any read past its end.
  std::string text(reinterpret_cast<const char*>(data) + 1, size - 1);
  std::string_view sql(text);
  auto tokens = Tokenize(sql, cap, mode);
  if (!tokens) {
    return 0;
  }
  Check(tokens->size() <= cap);
  const char* last_end = sql.data();
  for (const Token& t : *tokens) {
    Check(!t.text.empty());
    Check(t.text.data() >= last_end && t.text.data() + t.text.size() <= sql.data() + sql.size());
    last_end = t.text.data() + t.text.size();
  }
  for (const auto& statement : SplitStatements(*tokens)) {
    Check(!statement.empty());
    for (const Token& t : statement) {
      Check(!(t.kind == TokenKind::kPunct && t.text == ";"));
    }
    if (IsKill(statement)) {
      KillStatement kill = ParseKill(statement);
      Check(!kill.parsed || !kill.target.empty());
    }
  }
  return 0;
}
