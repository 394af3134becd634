// The classifier reads statements by their first keywords and a few token patterns, not with a
// grammar: where it cannot tell what a statement does it says kUnclassified (unknown means pin),
// and where a pattern could be read two ways it takes the one that pins.

#include "codecs/mysql/classify.h"

#include <algorithm>
#include <cstddef>
#include <initializer_list>
#include <iterator>
#include <optional>
#include <span>
#include <string>
#include <utility>
#include <vector>

#include "core/needle_scan.h"

namespace wirepool::codec::mysql {
namespace {

using sql::IsKeyword;
using sql::Token;
using sql::TokenKind;
using Tokens = std::span<const Token>;

constexpr size_t kNpos = std::string_view::npos;
constexpr std::string_view kSpaces = " \t\n\v\f\r";
// A text of more tokens counts as unreadable: bounds the memory of a query that the prefilter did
// not clear (a token takes 32 bytes).
constexpr size_t kMaxTokens = size_t{1} << 16;
constexpr size_t kMaxStatementBytes = 200;

// Statements that change nothing of the session beyond what ScanTokens finds in any statement
// (user variable assignments, GET_LOCK, ...). The prefilter clears these and BEGIN [WORK], CALL,
// GET and CREATE without "temporary", which the lexer's side looks into further.
constexpr std::string_view kNeutral[] = {
    "SELECT",     "INSERT",   "UPDATE",   "DELETE",   "REPLACE", "START",  "COMMIT",   "ROLLBACK",
    "SAVEPOINT",  "RELEASE",  "WITH",     "VALUES",   "TABLE",   "SHOW",   "DESCRIBE", "DESC",
    "EXPLAIN",    "DO",       "TRUNCATE", "ALTER",    "DROP",    "RENAME", "GRANT",    "REVOKE",
    "ANALYZE",    "OPTIMIZE", "CHECK",    "CHECKSUM", "REPAIR",  "USE",    "HELP",     "KILL",
    "DEALLOCATE", "PURGE",    "CACHE",    "RESET",    "CHANGE",  "STOP",   "SHUTDOWN", "RESTART",
    "SIGNAL",     "RESIGNAL", "UNINSTALL"};

// What SET NAMES and SET CHARACTER SET change, in the order they are to be replayed.
constexpr std::string_view kCharsetVariables[] = {"character_set_client",
                                                  "character_set_connection",
                                                  "character_set_results", "collation_connection"};

bool IsSpace(unsigned char c) { return c == ' ' || (c >= '\t' && c <= '\r'); }
bool IsWordByte(unsigned char c) {
  return (c >= '0' && c <= '9') || ((c | 0x20) >= 'a' && (c | 0x20) <= 'z') || c == '_' ||
         c == '$' || c >= 0x80;
}
char Lower(char c) { return c >= 'A' && c <= 'Z' ? static_cast<char>(c - 'A' + 'a') : c; }

// Whether a and b are equal but for the case of ASCII letters.
bool EqualsNoCase(std::string_view a, std::string_view b) {
  return a.size() == b.size() && std::equal(a.begin(), a.end(), b.begin(),
                                            [](char x, char y) { return Lower(x) == Lower(y); });
}
bool HasAt(std::string_view text, size_t pos, std::string_view needle) {
  return pos <= text.size() && EqualsNoCase(text.substr(pos, needle.size()), needle);
}

bool IsNeutralWord(std::string_view word) {
  return std::any_of(std::begin(kNeutral), std::end(kNeutral),
                     [word](std::string_view n) { return EqualsNoCase(word, n); });
}

// ---- prefilter ---------------------------------------------------------------------------------

// The offset of the first byte of `sql` past whitespace and comments (as the lexer skips them), or
// npos at an unterminated comment. (Texts with executable comments are never cleared.)
size_t FirstToken(std::string_view sql) {
  size_t i = 0;
  while (i < sql.size()) {  // npos ends it too
    const auto c = static_cast<unsigned char>(sql[i]);
    if (IsSpace(c)) {
      ++i;
    } else if (c == '#' || (HasAt(sql, i, "--") &&
                            (i + 2 == sql.size() || static_cast<unsigned char>(sql[i + 2]) <= ' ' ||
                             sql[i + 2] == '\x7f'))) {
      while (i < sql.size() && sql[i] != '\n' && sql[i] != '\0') {
        ++i;
      }
    } else if (HasAt(sql, i, "/*")) {
      const size_t close = sql.find("*/", i + 2);
      i = close == kNpos ? kNpos : close + 2;
    } else {
      return i;
    }
  }
  return kNpos;
}

// Whether `rest` (what follows BEGIN) leaves a plain BEGIN [WORK], not BEGIN NOT ATOMIC.
bool BareBegin(std::string_view rest) {
  size_t i = std::min(rest.find_first_not_of(kSpaces), rest.size());
  if (HasAt(rest, i, "work") && (i + 4 == rest.size() || !IsWordByte(rest[i + 4]))) {
    i = std::min(rest.find_first_not_of(kSpaces, i + 4), rest.size());
  }
  return i == rest.size() || rest[i] == ';';
}

// The substrings that send a text to the lexer (lower case).
constexpr std::string_view kNeedles[] = {
    "@", "get_lock", "release_all_locks", "sql_calc_found_rows", "/*!", "/*m!", ";"};
// Where they may start (with "temporary", looked for after CREATE): the first two bytes of each.
constexpr core::NeedleScan kNeedleScan({"@", "ge", "re", "sq", "/*", ";", "te"});
static_assert(kNeedleScan.Finds("temporary") &&
              std::all_of(std::begin(kNeedles), std::end(kNeedles),
                          [](std::string_view n) { return kNeedleScan.Finds(n); }));

// ---- tokens ------------------------------------------------------------------------------------

bool IsPunct(const Token& t, char c) { return t.kind == TokenKind::kPunct && t.text[0] == c; }

// Whether token i is one of the keywords `upper`.
bool Kw(Tokens s, size_t i, std::initializer_list<std::string_view> upper) {
  return i < s.size() && std::any_of(upper.begin(), upper.end(),
                                     [&](std::string_view k) { return IsKeyword(s[i], k); });
}

// A call of the function `upper`, named by a word or quoted identifier.
bool IsCall(Tokens s, size_t i, std::string_view upper) {
  std::string_view name = s[i].text;
  if (s[i].kind == TokenKind::kQuotedIdent && name.size() >= 2) {
    name = name.substr(1, name.size() - 2);
  } else if (s[i].kind != TokenKind::kWord) {
    return false;
  }
  return EqualsNoCase(name, upper) && i + 1 < s.size() && IsPunct(s[i + 1], '(');
}

bool IsVariable(const Token& t, bool system) {
  return t.kind == TokenKind::kVariable && (t.text[1] == '@') == system;
}

// @name, @'name', @`name`: a user variable, unless it is the host of 'user'@'host' or
// `user`@`host` (glued to a quoted token before it). An unquoted user name glued to it (bob@host)
// reads like a keyword (INTO@x), so that counts as a user variable.
bool IsUserVariable(Tokens s, size_t i) {
  const Token* before = i > 0 ? &s[i - 1] : nullptr;
  return IsVariable(s[i], false) &&
         (before == nullptr ||
          (before->kind != TokenKind::kString && before->kind != TokenKind::kQuotedIdent) ||
          before->text.data() + before->text.size() != s[i].text.data());
}

// An identifier's name, unquoted and in lower case.
std::string Name(std::string_view text) {
  std::string out;
  const char q = text.empty() ? '\0' : text[0];
  if (text.size() >= 2 && (q == '`' || q == '"' || q == '\'') && text.back() == q) {
    for (size_t k = 1; k + 1 < text.size(); ++k) {
      out.push_back(Lower(text[k]));
      k += text[k] == q ? 1 : 0;  // a doubled quote stands for itself
    }
    return out;
  }
  std::transform(text.begin(), text.end(), std::back_inserter(out), Lower);
  return out;
}

// The whole text a statement's tokens cover, whitespace collapsed, cut to kMaxStatementBytes at a
// UTF-8 character boundary.
std::string Shorten(std::string_view text) {
  std::string out;
  for (size_t i = 0; i < text.size() && out.size() <= kMaxStatementBytes; ++i) {
    if (!IsSpace(text[i]) || (!out.empty() && out.back() != ' ')) {
      out.push_back(IsSpace(text[i]) ? ' ' : text[i]);
    }
  }
  if (out.size() > kMaxStatementBytes) {
    size_t cut = kMaxStatementBytes;
    // out[cut] continues a character: cut before the character (at most 4 bytes, in valid UTF-8).
    for (int k = 0; k < 3 && (static_cast<unsigned char>(out[cut]) & 0xC0) == 0x80; ++k) {
      --cut;
    }
    out.resize(cut);
  }
  while (!out.empty() && out.back() == ' ') {
    out.pop_back();
  }
  return out;
}

std::string_view TextOf(Tokens s) {
  const char* begin = s.front().text.data();
  return {begin, static_cast<size_t>(s.back().text.data() + s.back().text.size() - begin)};
}

void Pin(RequestEffects& e, PinReason r) { e.pins |= PinBit(r); }
void Unpin(RequestEffects& e, PinReason r) { e.unpins |= PinBit(r); }
void ReadBack(RequestEffects& e, std::string name) {
  if (std::find(e.read_back.begin(), e.read_back.end(), name) == e.read_back.end()) {
    e.read_back.push_back(std::move(name));
  }
}

// What any statement does by its tokens alone: user variable assignments (@u := ..., INTO @u
// [, @v]), GET_LOCK(, RELEASE_ALL_LOCKS(, SQL_CALC_FOUND_ROWS.
void ScanTokens(Tokens s, RequestEffects& e) {
  bool into = false;  // in the list of targets after INTO
  for (size_t i = 0; i < s.size(); ++i) {
    const Token& t = s[i];
    if (IsCall(s, i, "GET_LOCK")) {
      Pin(e, PinReason::kAdvisoryLock);
    } else if (IsCall(s, i, "RELEASE_ALL_LOCKS")) {
      Unpin(e, PinReason::kAdvisoryLock);
    } else if (IsKeyword(t, "SQL_CALC_FOUND_ROWS")) {
      Pin(e, PinReason::kFoundRows);
    } else if (IsUserVariable(s, i) &&
               (into || (i + 2 < s.size() && IsPunct(s[i + 1], ':') && IsPunct(s[i + 2], '=')))) {
      Pin(e, PinReason::kUserVariable);
    }
    into = IsKeyword(t, "INTO") || (into && (t.kind == TokenKind::kVariable || IsPunct(t, ',')));
  }
}

// ---- SET ---------------------------------------------------------------------------------------

enum class Scope { kSession, kGlobal };

bool ScopeWord(Tokens s, size_t i, Scope& scope) {
  if (!Kw(s, i, {"SESSION", "LOCAL", "GLOBAL", "PERSIST", "PERSIST_ONLY"})) {
    return false;
  }
  scope = Kw(s, i, {"SESSION", "LOCAL"}) ? Scope::kSession : Scope::kGlobal;
  return true;
}

// The index of the first ',' (or, with `upper`, that keyword) from i outside parentheses, or the
// end of the statement.
size_t SkipTo(Tokens s, size_t i, std::string_view upper = {}) {
  int depth = 0;
  for (; i < s.size(); ++i) {
    if (IsPunct(s[i], '(')) {
      ++depth;
    } else if (IsPunct(s[i], ')')) {
      --depth;
    } else if (depth <= 0 && (upper.empty() ? IsPunct(s[i], ',') : IsKeyword(s[i], upper))) {
      break;
    }
  }
  return i;
}

// name, name.name, `name`, ...: a variable name from i, which moves past it; empty if none.
std::string VariableName(Tokens s, size_t& i) {
  std::string name;
  while (i < s.size() && (s[i].kind == TokenKind::kWord || s[i].kind == TokenKind::kQuotedIdent)) {
    std::string part = Name(s[i].text);
    if (part.empty()) {
      return {};
    }
    name += part;
    ++i;
    if (i + 1 >= s.size() || !IsPunct(s[i], '.')) {
      return name;
    }
    name += '.';
    ++i;
  }
  return {};
}

// One `name = value` (or :=) of a SET from i, which it leaves at the '='; false if it is none.
bool Assignment(Tokens s, size_t& i, Scope scope, RequestEffects& e) {
  std::string name;
  const bool user = i < s.size() && IsVariable(s[i], false);
  if (user) {
    Pin(e, PinReason::kUserVariable);
    ++i;
  } else if (i < s.size() && IsVariable(s[i], true)) {  // the session's unless a prefix says not
    std::string_view rest = s[i++].text.substr(2);
    scope = Scope::kSession;
    for (std::string_view prefix : {"session.", "local.", "global.", "persist.", "persist_only."}) {
      if (HasAt(rest, 0, prefix)) {
        scope = prefix[0] == 's' || prefix[0] == 'l' ? Scope::kSession : Scope::kGlobal;
        rest.remove_prefix(prefix.size());
        break;
      }
    }
    name = rest.empty() ? VariableName(s, i) : Name(rest);  // @@session.`name` is two tokens
  } else {
    name = VariableName(s, i);
  }
  i += i + 1 < s.size() && IsPunct(s[i], ':') ? 1 : 0;  // :=
  if (i >= s.size() || !IsPunct(s[i], '=') || (name.empty() && !user)) {
    return false;
  }
  if (!name.empty() && scope == Scope::kSession) {
    ReadBack(e, std::move(name));
  }
  return true;
}

// SET ... (s[0] is SET); false when it is none of the forms the classifier knows.
bool ClassifySet(Tokens s, RequestEffects& e) {
  if (Kw(s, 1, {"PASSWORD"}) || (Kw(s, 1, {"DEFAULT"}) && Kw(s, 2, {"ROLE"}))) {
    return true;  // account properties, nothing of the session
  }
  Scope scope = Scope::kSession;
  const bool scoped = ScopeWord(s, 1, scope);
  if (Kw(s, 1, {"ROLE", "TRANSACTION"})) {
    // No variable holds the role; SET TRANSACTION is for the next transaction only.
    Pin(e, PinReason::kUnclassified);
    return true;
  }
  if (scoped && Kw(s, 2, {"TRANSACTION"})) {  // characteristics of the session's transactions
    RequestEffects names;
    for (size_t i = 3; i < s.size(); ++i) {
      if (IsKeyword(s[i], "ISOLATION")) {
        names.read_back.insert(names.read_back.end(), {"tx_isolation", "transaction_isolation"});
      } else if (IsKeyword(s[i], "READ") && Kw(s, i + 1, {"ONLY", "WRITE"})) {
        names.read_back.insert(names.read_back.end(), {"tx_read_only", "transaction_read_only"});
      }
    }
    e.Merge(scope == Scope::kSession ? names : RequestEffects{});
    return !names.read_back.empty();
  }
  for (size_t i = 1;; ++i) {              // one assignment a turn, ending at its ',' or the end
    i += ScopeWord(s, i, scope) ? 1 : 0;  // holds for later assignments without their own
    if (Kw(s, i, {"NAMES", "CHARSET"}) ||
        (Kw(s, i, {"CHARACTER", "CHAR"}) && Kw(s, i + 1, {"SET"}))) {
      for (std::string_view name : kCharsetVariables) {
        ReadBack(e, std::string(name));
      }
    } else if (!Assignment(s, i, scope, e)) {
      return false;
    }
    if ((i = SkipTo(s, i + 1)) >= s.size()) {
      return true;
    }
  }
}

// ---- statements --------------------------------------------------------------------------------

// A statement's own effects beyond ScanTokens; false when the classifier does not know it.
bool ClassifyCommand(Tokens s, RequestEffects& e) {
  const Token& t = s[0];
  if (IsKeyword(t, "SET")) {
    return ClassifySet(s, e);
  }
  if (Kw(s, 0, {"LOCK", "UNLOCK"})) {
    if (!Kw(s, 1, {"TABLE", "TABLES", "INSTANCE"})) {
      return false;
    }
    (IsKeyword(t, "LOCK") ? Pin : Unpin)(e, PinReason::kTableLock);
    return true;
  }
  if (IsKeyword(t, "FLUSH")) {
    for (size_t i = 1; i + 1 < s.size(); ++i) {
      if ((IsKeyword(s[i], "READ") && IsKeyword(s[i + 1], "LOCK")) ||
          (IsKeyword(s[i], "FOR") && IsKeyword(s[i + 1], "EXPORT"))) {
        Pin(e, PinReason::kTableLock);
      }
    }
    return true;
  }
  if (IsKeyword(t, "BACKUP")) {  // MariaDB: BACKUP STAGE name, BACKUP LOCK t, BACKUP UNLOCK
    if (!Kw(s, 1, {"STAGE", "LOCK", "UNLOCK"})) {
      return false;
    }
    const bool release = Kw(s, 1, {"UNLOCK"}) || (Kw(s, 1, {"STAGE"}) && Kw(s, 2, {"END"}));
    (release ? Unpin : Pin)(e, PinReason::kTableLock);
    return true;
  }
  if (IsKeyword(t, "CREATE")) {  // CREATE [OR REPLACE] TEMPORARY TABLE | SEQUENCE
    for (size_t i = 1; Kw(s, i, {"OR", "REPLACE", "TEMPORARY"}); ++i) {
      if (IsKeyword(s[i], "TEMPORARY")) {
        Pin(e, PinReason::kTempTable);
      }
    }
    return true;
  }
  // Statements whose user variables may be outputs: OUT parameters, LOAD DATA's column list,
  // GET DIAGNOSTICS targets.
  if (Kw(s, 0, {"CALL", "GET"}) || (IsKeyword(t, "LOAD") && Kw(s, 1, {"DATA", "XML"}))) {
    for (size_t i = 0; i < s.size(); ++i) {
      if (IsUserVariable(s, i)) {
        Pin(e, PinReason::kUserVariable);
      }
    }
    return true;
  }
  if (IsKeyword(t, "EXECUTE")) {
    return !Kw(s, 1, {"IMMEDIATE"});  // EXECUTE IMMEDIATE runs any text
  }
  if (IsKeyword(t, "HANDLER")) {
    return std::none_of(s.begin() + 1, s.end(), [](const Token& x) {
      return IsKeyword(x, "OPEN");  // an open handler lives in the session
    });
  }
  if (IsKeyword(t, "BEGIN")) {
    return !Kw(s, 1, {"NOT"});  // BEGIN NOT ATOMIC: a compound statement, split at its ';'
  }
  // PREPARE, XA, INSTALL, other LOAD forms, BINLOG, compound statements, ... are unknown.
  return IsPunct(t, '(') || (t.kind == TokenKind::kWord && IsNeutralWord(t.text));
}

RequestEffects ClassifyStatement(Tokens whole) {
  RequestEffects e;
  ScanTokens(whole, e);
  Tokens s = whole;
  bool known = true;
  // SET STATEMENT var = value [, ...] FOR stmt (MariaDB): the values hold for stmt alone.
  while (known && Kw(s, 0, {"SET"}) && Kw(s, 1, {"STATEMENT"})) {
    const size_t for_at = SkipTo(s, 2, "FOR");
    known = for_at + 1 < s.size();
    s = s.subspan(std::min(for_at + 1, s.size()));
  }
  if (!known || !ClassifyCommand(s, e)) {
    Pin(e, PinReason::kUnclassified);
  }
  e.unpins &= ~e.pins;  // a statement that both sets and clears a pin may leave it set
  if (e.pins != 0) {
    e.statement = Shorten(TextOf(whole));
  }
  return e;
}

RequestEffects ClassifyStatements(const std::vector<Token>& tokens) {
  RequestEffects effects;
  for (Tokens statement : sql::SplitStatements(tokens)) {
    effects.Merge(ClassifyStatement(statement));
  }
  return effects;
}

}  // namespace

bool PrefilterClears(std::string_view sql) {
  const size_t start = FirstToken(sql);
  if (start == kNpos) {
    return false;
  }
  size_t end = start;
  while (end < sql.size() && IsWordByte(sql[end])) {
    ++end;
  }
  const std::string_view word = sql.substr(start, end - start);
  const bool create = EqualsNoCase(word, "CREATE");
  if (EqualsNoCase(word, "BEGIN") ? !BareBegin(sql.substr(end))
                                  : !create && !IsNeutralWord(word) &&
                                        !EqualsNoCase(word, "CALL") && !EqualsNoCase(word, "GET")) {
    return false;
  }
  for (size_t i = kNeedleScan.Next(sql, 0); i != kNpos; i = kNeedleScan.Next(sql, i + 1)) {
    if ((create && HasAt(sql, i, "temporary")) ||
        std::any_of(std::begin(kNeedles), std::end(kNeedles),
                    [&](std::string_view needle) { return HasAt(sql, i, needle); })) {
      // A ';' is allowed as the last byte that is not a space.
      if (sql[i] != ';' || sql.find_first_not_of(kSpaces, i + 1) != kNpos) {
        return false;
      }
    }
  }
  return true;
}

RequestEffects ClassifySqlUnfiltered(std::string_view sql, sql::SqlMode mode) {
  std::optional<std::vector<Token>> tokens = sql::Tokenize(sql, kMaxTokens, mode);
  if (!tokens.has_value()) {
    RequestEffects e;
    Pin(e, PinReason::kUnclassified);
    e.statement = Shorten(sql);
    return e;
  }
  RequestEffects effects = ClassifyStatements(*tokens);
  if (std::none_of(tokens->begin(), tokens->end(), [](const Token& t) { return t.conditional; })) {
    return effects;
  }
  // Executable comments that some servers skip: what either reading pins or changes counts, and a
  // pin is cleared only if both readings clear it.
  std::vector<Token> skipped;
  std::copy_if(tokens->begin(), tokens->end(), std::back_inserter(skipped),
               [](const Token& t) { return !t.conditional; });
  RequestEffects other = ClassifyStatements(skipped);
  const PinSet unpins = effects.unpins & other.unpins;
  effects.Merge(std::move(other));
  effects.unpins = unpins;
  return effects;
}

RequestEffects ClassifySql(std::string_view sql, sql::SqlMode mode) {
  if (PrefilterClears(sql)) {
    return {};
  }
  return ClassifySqlUnfiltered(sql, mode);
}

}  // namespace wirepool::codec::mysql
