// The lexer follows the state machine of the servers' own lexers (sql_lex.cc in MySQL 8 and
// MariaDB) only as far as token boundaries go: where a string, identifier or comment ends is what
// decides whether a KILL is hidden or not, so that is where it is exact.

#include "codecs/mysql/sql_scan.h"

#include <algorithm>
#include <utility>

namespace wirepool::codec::mysql::sql {
namespace {

// The version of "/*!50700": five digits, or six for MariaDB ("/*!100101"), else none.
constexpr size_t kVersionDigits = 5;

bool IsSpace(unsigned char c) { return c == ' ' || (c >= '\t' && c <= '\r'); }
bool IsDigit(unsigned char c) { return c >= '0' && c <= '9'; }
bool IsHexDigit(unsigned char c) { return IsDigit(c) || ((c | 0x20) >= 'a' && (c | 0x20) <= 'f'); }
bool IsWordChar(unsigned char c) {
  return IsDigit(c) || ((c | 0x20) >= 'a' && (c | 0x20) <= 'z') || c == '_' || c == '$' ||
         c >= 0x80;
}
char ToUpperAscii(char c) { return c >= 'a' && c <= 'z' ? static_cast<char>(c - 'a' + 'A') : c; }

class Lexer {
 public:
  Lexer(std::string_view sql, size_t max_tokens, SqlMode mode)
      : sql_(sql), max_tokens_(max_tokens), mode_(mode) {
    // Tokens are at least a byte each; reserving a little avoids most regrowth on short queries
    // without letting a large max_tokens allocate up front.
    tokens_.reserve(std::min({max_tokens, sql.size(), size_t{64}}));
  }

  std::optional<std::vector<Token>> Run() {
    size_t i = 0;
    while (i < sql_.size()) {
      if (in_exec_ && i >= exec_end_) {
        if (i > exec_end_) {
          return std::nullopt;  // a string or line comment ran past the */ a skipping server sees
        }
        in_exec_ = false;
        conditional_ = false;
        i += 2;
        continue;
      }
      if (!Next(i)) {
        return std::nullopt;
      }
    }
    if (in_exec_) {
      return std::nullopt;
    }
    return std::move(tokens_);
  }

 private:
  // The byte at i, or NUL past the end: the servers read their input NUL-terminated, and the end
  // of input and a NUL only differ where NUL is never looked for.
  unsigned char At(size_t i) const {
    return i < sql_.size() ? static_cast<unsigned char>(sql_[i]) : 0;
  }

  // Adds the token [i, end) and moves i to its end.
  bool Emit(TokenKind kind, size_t& i, size_t end) {
    if (tokens_.size() == max_tokens_) {
      return false;
    }
    tokens_.push_back(Token{kind, sql_.substr(i, end - i), conditional_});
    i = end;
    return true;
  }

  // One past the closing quote of the quoted token opening at `open`, or npos if unterminated.
  size_t QuotedEnd(size_t open, bool escapes) const {
    const char quote = sql_[open];
    for (size_t j = open + 1; j < sql_.size(); ++j) {
      if (escapes && sql_[j] == '\\') {
        ++j;  // the escaped byte, whatever it is
      } else if (sql_[j] == quote) {
        if (At(j + 1) != static_cast<unsigned char>(quote)) {
          return j + 1;
        }
        ++j;  // a doubled quote stands for itself
      }
    }
    return std::string_view::npos;
  }

  // Whether backslash escapes apply inside a token quoted with `quote`.
  bool Escapes(char quote) const {
    return quote == '\'' ? !mode_.no_backslash_escapes
                         : quote == '"' && !mode_.no_backslash_escapes && !mode_.ansi_quotes;
  }

  // Reads the construct starting at i (whitespace, a comment, or a token) and moves i past it.
  bool Next(size_t& i) {
    const unsigned char c = At(i);
    if (IsSpace(c)) {
      ++i;
      return true;
    }
    if (c == '#' || (c == '-' && At(i + 1) == '-' && (At(i + 2) <= ' ' || At(i + 2) == 0x7f))) {
      // The servers stop a line comment at a NUL byte too (and then read the NUL as a token).
      while (i < sql_.size() && sql_[i] != '\n' && sql_[i] != '\0') {
        ++i;
      }
      return true;
    }
    if (c == '/' && At(i + 1) == '*') {
      return Comment(i);
    }
    if (c == '\'' || c == '"' || c == '`') {
      size_t end = QuotedEnd(i, Escapes(static_cast<char>(c)));
      if (end == std::string_view::npos) {
        return false;
      }
      bool ident = c == '`' || (c == '"' && mode_.ansi_quotes);
      return Emit(ident ? TokenKind::kQuotedIdent : TokenKind::kString, i, end);
    }
    if (c == '@') {
      return Variable(i);
    }
    if (IsDigit(c) || (c == '.' && IsDigit(At(i + 1)))) {
      return Number(i);
    }
    if (IsWordChar(c)) {
      size_t end = i;
      while (end < sql_.size() && IsWordChar(At(end))) {
        ++end;
      }
      // MySQL 9 reads "$tag$ ... $tag$" as a string; MariaDB and older MySQL as identifiers.
      if (c == '$' && sql_.substr(i + 1, end - i - 1).find('$') != std::string_view::npos) {
        return false;
      }
      return Emit(TokenKind::kWord, i, end);
    }
    return Emit(TokenKind::kPunct, i, i + 1);
  }

  bool Comment(size_t& i) {
    const size_t close = sql_.find("*/", i + 2);
    if (close == std::string_view::npos) {
      return false;
    }
    const bool maria = At(i + 2) == 'M' && At(i + 3) == '!';
    if (At(i + 2) != '!' && !maria) {
      // Regular comments and MySQL's /*+ hints */ alike end at the first */ (a hint's quoted
      // names cannot contain one).
      i = close + 2;
      return true;
    }
    // A server that skips an executable comment ends it at the first */ unless another /* comes
    // first (the skip allows one nested level); one that expands it ends it at the first */ that
    // is not inside a string or line comment. Both must agree, or the rest reads differently.
    // The /* search includes the byte before */, as in "/*!/*/".
    if (in_exec_ || sql_.substr(i + 2, close + 1 - (i + 2)).find("/*") != std::string_view::npos) {
      return false;
    }
    size_t j = i + (maria ? 4 : 3);
    size_t digits = 0;
    while (digits <= kVersionDigits && IsDigit(At(j + digits))) {
      ++digits;
    }
    if (digits >= kVersionDigits) {
      j += digits;  // 5 digits, or 6 when a sixth follows (MariaDB's reading)
    }
    in_exec_ = true;
    exec_end_ = close;
    conditional_ = maria || digits >= kVersionDigits;
    i = j;
    return true;
  }

  bool Variable(size_t& i) {
    size_t j = i + 1;
    if (At(j) == '@') {
      ++j;  // @@system_variable
    }
    const unsigned char q = At(j);
    size_t end = j;
    if (q == '\'' || q == '"' || q == '`') {
      end = QuotedEnd(j, Escapes(static_cast<char>(q)));
      if (end == std::string_view::npos) {
        return false;
      }
    } else {
      // Unquoted names take '.' too: @@session.sql_mode, and MySQL's @a.b user variables.
      while (end < sql_.size() && (IsWordChar(At(end)) || At(end) == '.')) {
        ++end;
      }
      if (end == j) {
        return Emit(TokenKind::kPunct, i, i + 1);  // a bare '@' (as in 'user'@'host')
      }
    }
    return Emit(TokenKind::kVariable, i, end);
  }

  bool Number(size_t& i) {
    size_t j = i;
    if (At(i) == '0' && ((At(i + 1) | 0x20) == 'x' || (At(i + 1) | 0x20) == 'b')) {
      const bool hex = (At(i + 1) | 0x20) == 'x';
      size_t end = i + 2;
      while (hex ? IsHexDigit(At(end)) : (At(end) == '0' || At(end) == '1')) {
        ++end;
      }
      if (end > i + 2 && !IsWordChar(At(end))) {
        return Emit(TokenKind::kNumber, i, end);
      }
    }
    bool plain = true;  // digits only so far: a following letter makes a word (123abc)
    while (IsDigit(At(j))) {
      ++j;
    }
    if (At(j) == '.') {
      plain = false;
      ++j;
      while (IsDigit(At(j))) {
        ++j;
      }
    }
    if ((At(j) | 0x20) == 'e') {
      size_t k = j + 1;
      if (At(k) == '+' || At(k) == '-') {
        ++k;
      }
      if (IsDigit(At(k))) {
        plain = false;
        j = k;
        while (IsDigit(At(j))) {
          ++j;
        }
      }
    }
    if (plain && IsWordChar(At(j))) {
      while (IsWordChar(At(j))) {
        ++j;
      }
      return Emit(TokenKind::kWord, i, j);
    }
    return Emit(TokenKind::kNumber, i, j);
  }

  std::string_view sql_;
  size_t max_tokens_;
  SqlMode mode_;
  std::vector<Token> tokens_;
  bool in_exec_ = false;      // inside an executable comment, which ends at exec_end_
  size_t exec_end_ = 0;       // the first */ after its opening
  bool conditional_ = false;  // ... and a server may skip it
};

}  // namespace

std::optional<std::vector<Token>> Tokenize(std::string_view sql, size_t max_tokens, SqlMode mode) {
  return Lexer(sql, max_tokens, mode).Run();
}

std::vector<std::span<const Token>> SplitStatements(const std::vector<Token>& tokens) {
  std::vector<std::span<const Token>> statements;
  const std::span<const Token> all(tokens);
  size_t start = 0;
  for (size_t i = 0; i <= all.size(); ++i) {
    if (i == all.size() || (all[i].kind == TokenKind::kPunct && all[i].text == ";")) {
      if (i > start) {
        statements.push_back(all.subspan(start, i - start));
      }
      start = i + 1;
    }
  }
  return statements;
}

bool IsKeyword(const Token& t, std::string_view upper_keyword) {
  return t.kind == TokenKind::kWord && t.text.size() == upper_keyword.size() &&
         std::equal(t.text.begin(), t.text.end(), upper_keyword.begin(),
                    [](char a, char b) { return ToUpperAscii(a) == b; });
}

bool IsKill(std::span<const Token> statement) {
  for (const Token& t : statement) {
    if (IsKeyword(t, "KILL")) {
      return true;
    }
    if (!t.conditional) {
      return false;
    }
  }
  return false;
}

KillStatement ParseKill(std::span<const Token> statement) {
  KillStatement kill;
  if (statement.empty() || !IsKeyword(statement[0], "KILL")) {
    return kill;
  }
  // Partly conditional ("KILL /*!99999 QUERY */ 5") means a different KILL on different servers.
  for (const Token& t : statement) {
    if (t.conditional != statement[0].conditional) {
      return kill;
    }
  }
  size_t i = 1;
  if (i < statement.size() &&
      (IsKeyword(statement[i], "HARD") || IsKeyword(statement[i], "SOFT"))) {
    ++i;
  }
  if (i < statement.size() && IsKeyword(statement[i], "QUERY")) {
    kill.whole_connection = false;
    ++i;
  } else if (i < statement.size() && IsKeyword(statement[i], "CONNECTION")) {
    ++i;
  }
  if (i + 1 != statement.size() || statement[i].kind != TokenKind::kNumber) {
    return kill;
  }
  std::string_view id = statement[i].text;
  if (!std::all_of(id.begin(), id.end(), [](char c) { return IsDigit(c); })) {
    return kill;  // 0x1f, 1.5, 1e3
  }
  while (id.size() > 1 && id.front() == '0') {
    id.remove_prefix(1);
  }
  kill.parsed = true;
  kill.target = std::string(id);
  return kill;
}

}  // namespace wirepool::codec::mysql::sql
