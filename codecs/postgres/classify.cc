#include "codecs/postgres/classify.h"

#include <algorithm>
#include <array>
#include <cstddef>
#include <cstdint>
#include <iterator>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "codecs/postgres/parse_tree.h"
#include "core/needle_scan.h"

namespace wirepool::codec::postgres {
namespace {

constexpr size_t kNone = ParseTree::kNone;
constexpr size_t kStatementMax = 200;
constexpr size_t kMaxReadBack = 100;
constexpr int64_t kCursorOptHold = 0x0020;  // CURSOR_OPT_HOLD in PostgreSQL's parsenodes.h

// PostgreSQL 15's lexer whitespace (\v is not, before 16).
bool IsSpace(char c) { return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\f'; }
bool IsLetter(char c) { return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z'); }
bool IsIdentChar(char c) {
  return IsLetter(c) || (c >= '0' && c <= '9') || c == '_' || c == '$' ||
         static_cast<unsigned char>(c) >= 0x80;
}
bool IsUtf8Continuation(char c) { return (static_cast<unsigned char>(c) & 0xC0) == 0x80; }
char Lower(char c) { return c >= 'A' && c <= 'Z' ? static_cast<char>(c - 'A' + 'a') : c; }
std::string Lower(std::string s) {
  for (char& c : s) {
    c = Lower(c);
  }
  return s;
}

// Whether `s` starts with `lower` (ASCII lower case), in any case.
bool StartsWithNoCase(std::string_view s, std::string_view lower) {
  if (s.size() < lower.size()) {
    return false;
  }
  for (size_t i = 0; i < lower.size(); ++i) {
    if (Lower(s[i]) != lower[i]) {
      return false;
    }
  }
  return true;
}

// Moves `pos` past whitespace, -- comments and nested /* */ comments; false when a /* comment
// runs to the end of the text.
bool SkipSpaceAndComments(std::string_view s, size_t& pos) {
  while (pos < s.size()) {
    if (IsSpace(s[pos])) {
      ++pos;
    } else if (s.substr(pos, 2) == "--") {
      while (pos < s.size() && s[pos] != '\n' && s[pos] != '\r') {
        ++pos;
      }
    } else if (s.substr(pos, 2) == "/*") {
      pos += 2;
      for (size_t depth = 1; depth > 0;) {
        if (pos + 1 >= s.size()) {
          return false;
        }
        std::string_view two = s.substr(pos, 2);
        depth += two == "/*" ? 1 : 0;
        depth -= two == "*/" ? 1 : 0;
        pos += two == "/*" || two == "*/" ? 2 : 1;
      }
    } else {
      return true;
    }
  }
  return true;
}

// First keywords of statements that, short of the substrings PrefilterClears looks for, cannot
// touch session state. Lower case.
constexpr std::string_view kClearedKeywords[] = {
    "select", "insert", "update", "delete",  "merge",    "with",  "values",    "table",
    "begin",  "start",  "commit", "end",     "rollback", "abort", "savepoint", "release",
    "fetch",  "move",   "copy",   "explain", "truncate", "call",  "show",
};
constexpr size_t kLongestClearedKeyword =
    std::max_element(std::begin(kClearedKeywords), std::end(kClearedKeywords),
                     [](std::string_view a, std::string_view b) { return a.size() < b.size(); })
        ->size();

// The statement text for the log: whitespace runs collapsed to one space, trimmed, at most
// kStatementMax bytes and not ending inside a UTF-8 sequence.
std::string Shorten(std::string_view text) {
  std::string out;
  bool space = false;
  for (char c : text) {
    if (IsSpace(c)) {
      space = !out.empty();
      continue;
    }
    if (out.size() + (space ? 2 : 1) > kStatementMax) {
      if (!space && IsUtf8Continuation(c)) {
        // The cut falls inside a character: drop its first bytes too (if it is valid UTF-8).
        size_t keep = out.size();
        while (keep > 0 && out.size() - keep < 3 && IsUtf8Continuation(out[keep - 1])) {
          --keep;
        }
        if (keep > 0 && static_cast<unsigned char>(out[keep - 1]) >= 0xC0) {
          out.resize(keep - 1);
        }
        if (!out.empty() && out.back() == ' ') {
          out.pop_back();
        }
      }
      break;
    }
    if (space) {
      out.push_back(' ');
      space = false;
    }
    out.push_back(c);
  }
  return out;
}

// What one statement of a parse tree does to the session.
class StatementClassifier {
 public:
  // `earlier` is what the text's earlier statements read back.
  StatementClassifier(const ParseTree& tree, const std::vector<std::string>& earlier,
                      RequestEffects& effects)
      : tree_(tree), earlier_(earlier), effects_(effects) {}

  // `stmt` is the statement's parse node ({"VariableSetStmt": {...}}, ...).
  void Classify(size_t stmt) {
    size_t f = kNone;
    const std::string_view type = tree_.Type(stmt, &f);
    if (type.empty()) {
      Pin(PinReason::kUnclassified);  // not a tree of the shape this reads
      return;
    }
    if (type == "VariableSetStmt") {
      VariableSet(f);
    } else if (type == "DiscardStmt") {
      Discard(tree_.Raw(tree_.Member(f, "target")));
    } else if (type == "ListenStmt") {
      Pin(PinReason::kListen);
    } else if (type == "UnlistenStmt" && tree_.Member(f, "conditionname") == kNone) {
      effects_.unpins |= PinBit(PinReason::kListen);
    } else if (type == "DeclareCursorStmt" &&
               (tree_.Int(tree_.Member(f, "options")) & kCursorOptHold) != 0) {
      Pin(PinReason::kHoldCursor);
    } else if (type == "ClosePortalStmt" && tree_.Member(f, "portalname") == kNone) {
      effects_.unpins |= PinBit(PinReason::kHoldCursor);
    } else if (type == "LoadStmt") {
      Pin(PinReason::kLoadLibrary);
    } else if (type == "DoStmt") {
      Pin(PinReason::kUnclassified);  // DO: can do anything
    }
    // PREPARE is ClassifySqlWithParser's (what its query does is seen in the walk below).
    // Nodes anywhere in the statement (CTEs, subqueries, EXPLAIN, DECLARE, COPY (...), ...).
    for (size_t i = stmt; i < tree_[stmt].end;) {
      const std::string_view key = tree_[i].key;
      if (key == "CreateFunctionStmt") {
        // A definition, not a call: its body runs later. A function in pg_temp lives as long as
        // the session, like a temporary table.
        size_t names = tree_.Member(i, "funcname");
        size_t schema = tree_.First(names);
        if (schema != kNone && tree_.Next(names, schema) != kNone && IsTempSchema(Sval(schema))) {
          Pin(PinReason::kTempTable);
        }
        i = tree_[i].end;
        continue;
      }
      if (key == "FuncCall") {
        FuncCall(i);
      } else if (key == "CreateStmt") {
        Created(tree_.Member(i, "relation"), tree_.Raw(tree_.Member(i, "oncommit")));
      } else if (key == "CreateSeqStmt") {
        Created(tree_.Member(i, "sequence"), {});
      } else if (key == "ViewStmt") {
        Created(tree_.Member(i, "view"), {});
      } else if (key == "intoClause" || key == "into" || key == "IntoClause") {
        // SELECT ... INTO, CREATE TABLE ... AS.
        Created(tree_.Member(i, "rel"), tree_.Raw(tree_.Member(i, "onCommit")));
      } else if (key == "UpdateStmt") {
        // UPDATE pg_settings is set_config(name, setting, false) for each row it touches.
        size_t rel = tree_.Member(i, "relation");
        if (tree_.Str(tree_.Member(rel, "relname")) == "pg_settings") {
          Pin(PinReason::kUnclassified);
        }
      }
      ++i;
    }
    effects_.unpins &= ~effects_.pins;
  }

 private:
  void Pin(PinReason reason) { effects_.pins |= PinBit(reason); }
  // Adds a parameter to read back; past kMaxReadBack names in the whole text (earlier statements'
  // included) the client is pinned instead, which bounds the work a crafted text can cause.
  void ReadBack(std::string name) {
    name = Lower(std::move(name));
    auto has = [&name](const std::vector<std::string>& names) {
      return std::find(names.begin(), names.end(), name) != names.end();
    };
    if (has(effects_.read_back) || has(earlier_)) {
      return;
    }
    if (effects_.read_back.size() + earlier_.size() >= kMaxReadBack) {
      Pin(PinReason::kUnclassified);
      return;
    }
    effects_.read_back.push_back(std::move(name));
  }
  static bool IsTempSchema(std::string_view schema) { return schema.starts_with("pg_temp"); }
  // The text of a {"String": {"sval": ...}} node.
  std::string Sval(size_t i) const {
    size_t f = kNone;
    return tree_.Type(i, &f) == "String" ? tree_.Str(tree_.Member(f, "sval")) : std::string();
  }

  void VariableSet(size_t f) {
    if (tree_.IsTrue(tree_.Member(f, "is_local"))) {
      return;  // SET LOCAL: gone at the end of the transaction
    }
    const std::string_view kind = tree_.Raw(tree_.Member(f, "kind"));
    const std::string name = Lower(tree_.Str(tree_.Member(f, "name")));
    if (kind == "VAR_RESET_ALL") {
      effects_.reset_params = true;
    } else if (kind == "VAR_SET_MULTI" &&
               (name == "transaction" || name == "transaction snapshot")) {
      // SET TRANSACTION ...: this transaction only.
    } else if (kind == "VAR_SET_MULTI" && name == "session characteristics") {
      size_t args = tree_.Member(f, "args");
      for (size_t a = tree_.First(args); a != kNone; a = tree_.Next(args, a)) {
        size_t def = kNone;
        if (tree_.Type(a, &def) != "DefElem") {
          Pin(PinReason::kUnclassified);
          continue;
        }
        // transaction_isolation -> default_transaction_isolation, ...
        ReadBack("default_" + tree_.Str(tree_.Member(def, "defname")));
      }
    } else if ((kind == "VAR_SET_VALUE" || kind == "VAR_SET_DEFAULT" || kind == "VAR_SET_CURRENT" ||
                kind == "VAR_RESET") &&
               !name.empty()) {
      ReadBack(name);
      if (name == "session_authorization") {
        ReadBack("role");  // SET SESSION AUTHORIZATION also resets the role to NONE
      }
    } else {
      Pin(PinReason::kUnclassified);
    }
  }

  void Discard(std::string_view target) {
    if (target == "DISCARD_ALL") {
      effects_.reset_params = true;
      effects_.unpins |= PinBit(PinReason::kTempTable) | PinBit(PinReason::kAdvisoryLock) |
                         PinBit(PinReason::kListen) | PinBit(PinReason::kHoldCursor);
    } else if (target == "DISCARD_TEMP") {
      effects_.unpins |= PinBit(PinReason::kTempTable);
    } else if (target != "DISCARD_PLANS" && target != "DISCARD_SEQUENCES") {
      Pin(PinReason::kUnclassified);
    }
  }

  // A relation a statement creates (a RangeVar); `on_commit` is the ON COMMIT action, if any.
  void Created(size_t rel, std::string_view on_commit) {
    if (rel == kNone || on_commit == "ONCOMMIT_DROP") {
      return;
    }
    if (tree_.Raw(tree_.Member(rel, "relpersistence")) == "t" ||
        IsTempSchema(tree_.Str(tree_.Member(rel, "schemaname")))) {
      Pin(PinReason::kTempTable);
    }
  }

  void FuncCall(size_t call) {
    size_t names = tree_.Member(call, "funcname");
    std::string name;
    for (size_t n = tree_.First(names); n != kNone; n = tree_.Next(names, n)) {
      name = Sval(n);  // the last part; the schema does not matter
    }
    name = Lower(std::move(name));
    if (name == "pg_advisory_lock" || name == "pg_advisory_lock_shared" ||
        name == "pg_try_advisory_lock" || name == "pg_try_advisory_lock_shared") {
      Pin(PinReason::kAdvisoryLock);
    } else if (name == "pg_advisory_unlock_all") {
      effects_.unpins |= PinBit(PinReason::kAdvisoryLock);
    } else if (name == "set_config") {
      SetConfig(tree_.Member(call, "args"));
    }
  }

  // set_config(name, value, is_local): session-wide unless is_local is the constant true.
  void SetConfig(size_t args) {
    std::vector<size_t> arg;
    for (size_t a = tree_.First(args); a != kNone; a = tree_.Next(args, a)) {
      arg.push_back(a);
    }
    if (arg.size() != 3) {
      Pin(PinReason::kUnclassified);  // named arguments, or a set_config of the user's own
      return;
    }
    if (ConstTrue(arg[2])) {
      return;
    }
    std::optional<std::string> name = ConstString(arg[0]);
    if (!name.has_value()) {
      Pin(PinReason::kUnclassified);
    } else if (!name->empty()) {
      ReadBack(std::move(*name));
    }
  }

  // `node` under any casts ('x'::text::name); kNone for a cast of nothing.
  size_t Uncast(size_t node) const {
    size_t f = kNone;
    while (node != kNone && tree_.Type(node, &f) == "TypeCast") {
      node = tree_.Member(f, "arg");
    }
    return node;
  }

  // The fields of an A_Const, under any casts; kNone if `node` is not one.
  size_t Const(size_t node) const {
    size_t f = kNone;
    node = Uncast(node);
    return node != kNone && tree_.Type(node, &f) == "A_Const" ? f : kNone;
  }

  // A string constant ('search_path', 'search_path'::text).
  std::optional<std::string> ConstString(size_t node) const {
    size_t sval = tree_.Member(Const(node), "sval");
    if (sval == kNone) {
      return std::nullopt;
    }
    return tree_.Str(tree_.Member(sval, "sval"));  // {"sval": {}} is ''
  }

  // The constant true: true, or a string the server's boolin reads as true ('t', 'yes', 'on', ...).
  bool ConstTrue(size_t node) const {
    size_t boolval = tree_.Member(Const(node), "boolval");
    if (boolval != kNone) {
      return tree_.IsTrue(tree_.Member(boolval, "boolval"));  // {"boolval": {}} is false
    }
    std::optional<std::string> s = ConstString(node);
    if (!s.has_value()) {
      return false;
    }
    auto blank = [](char c) { return IsSpace(c) || c == '\v'; };  // boolin skips isspace()
    std::string_view v = *s;
    while (!v.empty() && blank(v.front())) {
      v.remove_prefix(1);
    }
    while (!v.empty() && blank(v.back())) {
      v.remove_suffix(1);
    }
    const std::string lower = Lower(std::string(v));
    return !lower.empty() &&
           (std::string_view("true").starts_with(lower) ||
            std::string_view("yes").starts_with(lower) || lower == "on" || lower == "1");
  }

  const ParseTree& tree_;
  const std::vector<std::string>& earlier_;
  RequestEffects& effects_;
};

// What top-level statement `stmt` does to the session's SQL-level prepared statements. A PREPARE
// whose query does anything to the session (`effects`, from its walk) would do it again at each
// EXECUTE, unseen: that pins instead. Without `track` (a Parse), PREPARE and DEALLOCATE of a name
// pin too.
SqlOp StatementOp(const ParseTree& tree, size_t stmt, bool track, RequestEffects& effects) {
  SqlOp op;
  size_t f = kNone;
  const std::string_view type = tree.Type(stmt, &f);
  if (type == "PrepareStmt") {
    if (!track || !effects.empty()) {
      // Nothing is cleared by preparing a statement that would clear it.
      effects.unpins = 0;
      effects.reset_params = false;
      effects.pins |= PinBit(PinReason::kUnclassified);
      return op;
    }
    op.kind = SqlOp::kPrepare;
    op.name = tree.Str(tree.Member(f, "name"));
  } else if (type == "DeallocateStmt") {
    const size_t name = tree.Member(f, "name");
    if (name == kNone || tree.IsTrue(tree.Member(f, "isall"))) {
      op.kind = SqlOp::kDeallocateAll;
    } else if (!track) {
      effects.pins |= PinBit(PinReason::kUnclassified);
    } else {
      op.kind = SqlOp::kDeallocate;
      op.name = tree.Str(name);
    }
  } else if (type == "DiscardStmt" && tree.Raw(tree.Member(f, "target")) == "DISCARD_ALL") {
    op.kind = SqlOp::kDiscardAll;
  }
  return op;
}

RequestEffects Unclassified(std::string_view text) {
  RequestEffects effects;
  effects.pins = PinBit(PinReason::kUnclassified);
  effects.statement = Shorten(text);
  return effects;
}

}  // namespace

bool PrefilterClears(std::string_view sql) {
  size_t pos = 0;
  if (!SkipSpaceAndComments(sql, pos)) {
    return false;
  }
  if (pos == sql.size()) {
    return true;  // no statement at all
  }
  // The first word, lower-cased once; one longer than every keyword is none of them.
  char lower[kLongestClearedKeyword];
  size_t len = 0;
  for (; pos < sql.size() && IsLetter(sql[pos]); ++pos, ++len) {
    if (len == sizeof lower) {
      return false;
    }
    lower[len] = Lower(sql[pos]);
  }
  if (len == 0 || (pos < sql.size() && IsIdentChar(sql[pos]))) {
    return false;
  }
  const std::string_view word(lower, len);
  if (std::find(std::begin(kClearedKeywords), std::end(kClearedKeywords), word) ==
      std::end(kClearedKeywords)) {
    return false;
  }
  const bool into_matters = word == "select" || word == "with" || word == "explain";
  // Every query in transaction pooling comes through here: the scan finds where one of the
  // substrings below may start, and only there does the switch look.
  static constexpr core::NeedleScan kScan({";", "&\"", "ad", "se", "te", "pg", "in"});
  // Every substring the switch below looks for.
  static constexpr std::string_view kLookedFor[] = {";",    "&\"",         "advisory", "set_config",
                                                    "temp", "pg_settings", "into"};
  static_assert(std::all_of(std::begin(kLookedFor), std::end(kLookedFor),
                            [](std::string_view n) { return kScan.Finds(n); }));
  for (size_t i = kScan.Next(sql, pos); i != std::string_view::npos; i = kScan.Next(sql, i + 1)) {
    const std::string_view rest = sql.substr(i);
    switch (Lower(sql[i])) {
      case ';':
        for (char c : rest.substr(1)) {
          if (!IsSpace(c)) {
            return false;
          }
        }
        return true;
      case '&':
        if (rest.starts_with("&\"")) {
          return false;
        }
        break;
      case 'a':
        if (StartsWithNoCase(rest, "advisory")) {
          return false;
        }
        break;
      case 's':
        if (StartsWithNoCase(rest, "set_config")) {
          return false;
        }
        break;
      case 't':
        if (StartsWithNoCase(rest, "temp")) {
          return false;
        }
        break;
      case 'p':
        if (StartsWithNoCase(rest, "pg_settings")) {
          return false;
        }
        break;
      case 'i':
        if (into_matters && StartsWithNoCase(rest, "into")) {
          return false;
        }
        break;
      default:
        break;
    }
  }
  return true;
}

RequestEffects ClassifySqlWithParser(std::string_view sql, std::vector<SqlOp>* ops) {
  const std::string_view text = sql.substr(0, sql.find('\0'));  // what the server reads, too
  ParseTree tree;
  if (!tree.ParseSql(text) || tree.size() == 0) {
    return Unclassified(text);
  }
  RequestEffects all;
  std::vector<SqlOp> found;
  bool any_op = false;
  const size_t stmts = tree.Member(0, "stmts");
  for (size_t s = tree.First(stmts); s != kNone; s = tree.Next(stmts, s)) {
    RequestEffects effects;
    const size_t stmt = tree.Member(s, "stmt");
    StatementClassifier(tree, all.read_back, effects).Classify(stmt);
    SqlOp op = StatementOp(tree, stmt, ops != nullptr, effects);
    // stmt_location and stmt_len are byte offsets; a length of 0 means to the end.
    const auto loc = static_cast<size_t>(tree.Int(tree.Member(s, "stmt_location")));
    const auto len = static_cast<size_t>(tree.Int(tree.Member(s, "stmt_len")));
    const std::string_view own =
        loc < text.size() ? text.substr(loc, len == 0 ? text.npos : len) : std::string_view();
    if (op.kind == SqlOp::kPrepare) {
      op.text = std::string(own);
    }
    if (effects.pins != 0 && all.statement.empty()) {
      effects.statement = Shorten(own);
      if (effects.statement.empty()) {
        effects.statement = Shorten(text);
      }
    }
    any_op = any_op || op.kind != SqlOp::kOther;
    found.push_back(std::move(op));
    all.Merge(std::move(effects));
  }
  if (ops != nullptr && any_op) {
    while (!found.empty() && found.back().kind == SqlOp::kOther) {
      found.pop_back();
    }
    ops->insert(ops->end(), std::make_move_iterator(found.begin()),
                std::make_move_iterator(found.end()));
  }
  return all;
}

RequestEffects ClassifySql(std::string_view sql, std::vector<SqlOp>* ops) {
  if (PrefilterClears(sql)) {
    return {};
  }
  return ClassifySqlWithParser(sql, ops);
}

}  // namespace wirepool::codec::postgres
