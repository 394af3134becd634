#include "codecs/mysql/sql_statements.h"

#include <cctype>
#include <string>
#include <string_view>
#include <vector>

#include "codecs/mysql/sql_scan.h"
#include "core/strings.h"

namespace wirepool::codec::mysql {
namespace {

constexpr std::string_view kNotePrefix = "\x01sql:";
constexpr std::string_view kParamPrefix = "\x01prepared:";
constexpr size_t kMaxTokens = 4096;

bool MentionsPrepare(std::string_view sql) {
  constexpr std::string_view kWord = "prepare";
  for (size_t i = 0; i + kWord.size() <= sql.size(); ++i) {
    size_t j = 0;
    while (j < kWord.size() && (sql[i + j] | 0x20) == kWord[j]) {
      ++j;
    }
    if (j == kWord.size()) {
      return true;
    }
  }
  return false;
}

std::string Lower(std::string_view s) {
  std::string out(s);
  for (char& c : out) {
    c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  }
  return out;
}

// A statement name: a plain word, or a backtick-quoted identifier (doubled backticks inside).
std::optional<std::string> NameOf(const sql::Token& t) {
  if (t.kind == sql::TokenKind::kWord) {
    return Lower(t.text);
  }
  if (t.kind == sql::TokenKind::kQuotedIdent && t.text.size() >= 2 && t.text[0] == '`') {
    std::string name;
    std::string_view body = t.text.substr(1, t.text.size() - 2);
    for (size_t i = 0; i < body.size(); ++i) {
      name += body[i];
      if (body[i] == '`') {
        ++i;  // the second of a doubled backtick
      }
    }
    return Lower(name);
  }
  return std::nullopt;
}

// The text of a string literal without escapes to undo (a backslash makes it unread: what it
// stands for depends on the sql_mode); doubled quotes are undone.
std::optional<std::string> LiteralOf(const sql::Token& t) {
  if (t.kind != sql::TokenKind::kString || t.text.size() < 2) {
    return std::nullopt;
  }
  char quote = t.text[0];
  std::string_view body = t.text.substr(1, t.text.size() - 2);
  if (body.find('\\') != std::string_view::npos) {
    return std::nullopt;
  }
  std::string text;
  for (size_t i = 0; i < body.size(); ++i) {
    text += body[i];
    if (body[i] == quote) {
      ++i;
    }
  }
  return text;
}

SqlStatementOp ReadOne(std::string_view sql, sql::SqlMode mode) {
  auto tokens = sql::Tokenize(sql, kMaxTokens, mode);
  if (!tokens) {
    return {};
  }
  auto statements = sql::SplitStatements(*tokens);
  if (statements.size() != 1) {
    return {};
  }
  auto s = statements[0];
  for (const sql::Token& t : s) {
    if (t.conditional) {
      return {};
    }
  }
  SqlStatementOp op;
  if (s.size() == 4 && sql::IsKeyword(s[0], "PREPARE") && sql::IsKeyword(s[2], "FROM")) {
    auto name = NameOf(s[1]);
    auto text = LiteralOf(s[3]);
    if (name && text) {
      op.kind = SqlStatementOp::kPrepare;
      op.name = std::move(*name);
      op.inner = std::move(*text);
    }
  } else if (s.size() == 3 &&
             (sql::IsKeyword(s[0], "DEALLOCATE") || sql::IsKeyword(s[0], "DROP")) &&
             sql::IsKeyword(s[1], "PREPARE")) {
    if (auto name = NameOf(s[2])) {
      op.kind = SqlStatementOp::kDeallocate;
      op.name = std::move(*name);
    }
  }
  return op;
}

}  // namespace

SqlStatementOp ReadSqlStatementOp(std::string_view sql) {
  if (!MentionsPrepare(sql)) {
    return {};
  }
  SqlStatementOp op = ReadOne(sql, {});
  if (op.kind == SqlStatementOp::kNone || !(ReadOne(sql, {.no_backslash_escapes = true}) == op) ||
      !(ReadOne(sql, {.ansi_quotes = true}) == op)) {
    return {};
  }
  return op;
}

std::string SqlNoteKey(std::string_view name) { return Cat(kNotePrefix, name); }

std::optional<std::string_view> SqlNameOfNoteKey(std::string_view key) {
  if (!key.starts_with(kNotePrefix)) {
    return std::nullopt;
  }
  return key.substr(kNotePrefix.size());
}

std::string SqlStatementParam(std::string_view name) { return Cat(kParamPrefix, name); }

std::optional<std::string_view> SqlStatementOfParam(std::string_view param) {
  if (!param.starts_with(kParamPrefix)) {
    return std::nullopt;
  }
  return param.substr(kParamPrefix.size());
}

std::string QuoteIdentifier(std::string_view name) {
  std::string out = "`";
  for (char c : name) {
    out += c;
    if (c == '`') {
      out += '`';
    }
  }
  return out + "`";
}

}  // namespace wirepool::codec::mysql
