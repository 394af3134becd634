// Transaction pooling, `pin_as_error`: a Query or Parse whose statement would pin the client is
// refused. The client codec cannot answer it by itself: answers to what the client sent before it
// may still be on their way, and inside a transaction block the server must fail the
// transaction, as it would had it refused the statement itself. So the server gets, in place of
// the client's statement, one that raises the refusal (SQLSTATE 0A000, feature_not_supported),
// and answers it in order: a simple Query fails at once; a Parse prepares the raising statement
// (with the client's parameter types, unspecified ones as text, so that its Bind still fits) and
// fails when executed. The client's statement never reaches a server.

#include <algorithm>
#include <optional>
#include <string>

#include "codecs/postgres/client_codec.h"
#include "codecs/postgres/wire.h"
#include "core/strings.h"

namespace wirepool::codec::postgres {
namespace {

constexpr uint32_t kTextOid = 25;

// A DO block that raises `message` with SQLSTATE 0A000. The message goes in an escape string
// (read alike whatever standard_conforming_strings says) in which no '$' may end the block.
std::string RaiseSql(std::string_view message) {
  std::string literal = "E'";
  for (char c : message) {
    if (c == '\'') {
      literal += "''";
    } else if (c == '\\') {
      literal += "\\\\";
    } else if (c == '$') {
      literal += "\\x24";
    } else {
      literal.push_back(c);
    }
  }
  literal += "'";
  return Cat("DO $wirepool$BEGIN RAISE EXCEPTION USING ERRCODE = '0A000', MESSAGE = ", literal,
             "; END$wirepool$");
}

}  // namespace

Step ClientCodec::Refuse(uint8_t type, ByteView in, size_t total, std::string_view message) {
  const std::string raise = RaiseSql(message);
  if (type == 'Q') {
    sink_.OnStatementMessage({StatementNote::kSync, true, ""});
    mid_request_ = false;
    sink_.SendToServer(QueryMessage(raise));
    sink_.OnRequestEnd('Q');
  } else {
    // The Parse of the raising statement under the client's name (a named one is kept like any
    // other, so that each execution of it is refused), with the client's parameter types.
    std::string name;
    Writer w;
    w.Begin('P');
    if (in.size() >= total) {
      Reader r(in.subspan(kHeaderLen, total - kHeaderLen));
      auto client_name = r.CString();
      auto text = client_name ? r.CString() : std::nullopt;
      auto count = text ? r.U16() : std::nullopt;
      name = client_name ? std::string(*client_name) : "";
      w.CString(name).CString(raise);
      uint16_t n = count ? *count : 0;
      w.U16(n);
      for (uint16_t i = 0; i < n; ++i) {
        auto oid = r.U32();
        w.U32(oid && *oid != 0 ? *oid : kTextOid);
      }
    } else {
      // Too large to read whole: the raising statement goes unnamed, without parameters.
      w.CString("").CString(raise).U16(0);
    }
    std::string parse = w.Take();
    ByteView view(reinterpret_cast<const uint8_t*>(parse.data()), parse.size());
    Step step = OnParse(view);
    if (step.verdict == Verdict::kForward) {
      sink_.SendToServer(parse);
    }
    mid_request_ = true;
  }
  size_t n = std::min(total, in.size());
  discard_left_ = total - n;
  return {Verdict::kConsume, n};
}

}  // namespace wirepool::codec::postgres
