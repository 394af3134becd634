#pragma once

// A small lexer for MySQL/MariaDB SQL text: enough to find statement boundaries and the keywords
// that start a statement without a parser (KILL now; SET, USE, PREPARE, LOCK TABLES, ... for
// transaction pooling later). It reads untrusted client bytes: it never reads outside its input,
// runs in linear time, and answers "could not read it" (nullopt) rather than guess where two
// servers would read the same bytes differently.
//
// Known limits: the client character set is assumed ASCII-compatible with no multibyte character
// whose trailing byte is a quote, backslash or backtick (true of utf8mb4, utf8mb3, latin1, ...;
// not of big5, cp932, gbk, gb18030, sjis), and bytes >= 0x80 are never whitespace (latin1 and
// other single-byte sets read 0xA0 as a space). Semicolons inside compound statements
// (BEGIN NOT ATOMIC ... END) split statements like any other.

#include <cstddef>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

namespace wirepool::codec::mysql::sql {

enum class TokenKind { kWord, kVariable, kString, kQuotedIdent, kNumber, kPunct };

struct Token {
  TokenKind kind;
  std::string_view text;  // a view into the input; strings and quoted identifiers keep their quotes
  // Inside a versioned (/*!50700 ... */, /*M!100101 ... */) or MariaDB-only (/*M! ... */)
  // executable comment, which a server of another version or flavour skips as a plain comment.
  bool conditional = false;
};

// The sql_mode flags that move the end of a quoted token.
struct SqlMode {
  bool no_backslash_escapes = false;  // NO_BACKSLASH_ESCAPES (kStatusNoBackslashEscapes)
  bool ansi_quotes = false;           // ANSI_QUOTES: "..." is an identifier, without escapes
};

// Tokens of `sql` by MySQL's lexical rules. Whitespace and comments (/* */, "-- " i.e. two dashes
// followed by whitespace, a control byte or the end, and "#" to the end of the line; a NUL byte
// also ends the last two, as in the server) are dropped, except executable comments "/*! ... */",
// "/*!50700 ... */", "/*M! ... */", "/*M!100101 ... */" whose contents are lexed as ordinary
// tokens (marker and 5- or 6-digit version dropped; the first */ ends them). Strings '...' and
// "..." take backslash escapes and doubled quotes; `...` takes doubled backticks; introducers
// (_utf8mb4'x', N'x', X'ff') lex as a word then a string. kVariable: @name, @@name,
// @@session.name, @'quoted', @`quoted`. kNumber: digits, decimals, exponents, 0x.., 0b...
// kWord: [A-Za-z0-9_$] and bytes >= 0x80 (digits first only when a letter follows). kPunct: any
// other single byte, NUL included.
//
// nullopt when the text has an unterminated string, quoted identifier or comment, or more than
// max_tokens tokens, or reads differently on servers that expand an executable comment and
// servers that skip it (a comment nested in it, or a string or line comment running past its
// first */), or on MySQL 9 ($tag$ dollar-quoted text, an identifier elsewhere).
std::optional<std::vector<Token>> Tokenize(std::string_view sql, size_t max_tokens,
                                           SqlMode mode = {});

// The statements of a token list, split at ';' punct tokens; empty statements are dropped.
std::vector<std::span<const Token>> SplitStatements(const std::vector<Token>& tokens);

// Case-insensitive keyword test for a kWord token (ASCII letters only).
bool IsKeyword(const Token& t, std::string_view upper_keyword);

struct KillStatement {
  bool parsed = false;           // one of the forms below
  std::string target;            // the connection id, decimal, without leading zeros ("0" stays)
  bool whole_connection = true;  // false for KILL ... QUERY
};

// Whether this statement starts with the keyword KILL, on any server: a KILL preceded only by
// conditional tokens counts, since a server that skips those comments starts the statement there.
bool IsKill(std::span<const Token> statement);

// Parses KILL [HARD | SOFT] [CONNECTION | QUERY] <digits> (MariaDB's forms; any case). Other KILL
// forms (KILL USER x, KILL QUERY ID n, KILL <expression>), and statements of which only a part is
// conditional, come back with parsed == false.
KillStatement ParseKill(std::span<const Token> statement);

}  // namespace wirepool::codec::mysql::sql
