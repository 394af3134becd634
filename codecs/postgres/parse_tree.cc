#include "codecs/postgres/parse_tree.h"

#include <charconv>
#include <optional>
#include <utility>

#include "pg_query.h"

namespace wirepool::codec::postgres {
namespace {

bool IsJsonSpace(char c) { return c == ' ' || c == '\t' || c == '\n' || c == '\r'; }
bool IsScalarChar(char c) {
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '-' ||
         c == '+' || c == '.';
}

void AppendUtf8(std::string& out, unsigned cp) {
  if (cp < 0x80) {
    out.push_back(static_cast<char>(cp));
  } else if (cp < 0x800) {
    out.push_back(static_cast<char>(0xC0 | (cp >> 6)));
    out.push_back(static_cast<char>(0x80 | (cp & 0x3F)));
  } else {
    out.push_back(static_cast<char>(0xE0 | (cp >> 12)));
    out.push_back(static_cast<char>(0x80 | ((cp >> 6) & 0x3F)));
    out.push_back(static_cast<char>(0x80 | (cp & 0x3F)));
  }
}

// JSON text into nodes (ParseTree::Node), without recursion. False when it is not JSON.
bool Flatten(std::string_view s, std::vector<ParseTree::Node>& nodes) {
  using Node = ParseTree::Node;
  constexpr size_t kNone = ParseTree::kNone;
  std::vector<size_t> open;  // containers not yet closed
  size_t p = 0;
  auto skip = [&] {
    while (p < s.size() && IsJsonSpace(s[p])) {
      ++p;
    }
  };
  // From the opening quote at p: the contents, with p moved past the closing quote.
  auto string = [&]() -> std::optional<std::string_view> {
    for (size_t i = p + 1; i < s.size(); ++i) {
      if (s[i] == '\\') {
        ++i;
      } else if (s[i] == '"') {
        std::string_view contents = s.substr(p + 1, i - p - 1);
        p = i + 1;
        return contents;
      }
    }
    return std::nullopt;
  };
  auto closer = [&](size_t i) { return nodes[i].kind == Node::kObject ? '}' : ']'; };
  for (;;) {
    std::string_view key;
    skip();
    if (!open.empty() && nodes[open.back()].kind == Node::kObject) {
      std::optional<std::string_view> k = p < s.size() && s[p] == '"' ? string() : std::nullopt;
      skip();
      if (!k || p >= s.size() || s[p] != ':') {
        return false;
      }
      key = *k;
      ++p;
      skip();
    }
    if (p >= s.size()) {
      return false;
    }
    const size_t index = nodes.size();
    if (s[p] == '{' || s[p] == '[') {
      nodes.push_back({s[p] == '{' ? Node::kObject : Node::kArray, key, {}, kNone});
      open.push_back(index);
      ++p;
      skip();
      if (p >= s.size() || s[p] != closer(index)) {
        continue;  // on to its first member or element
      }
      nodes[index].end = index + 1;
      open.pop_back();
      ++p;
    } else if (s[p] == '"') {
      std::optional<std::string_view> text = string();
      if (!text) {
        return false;
      }
      nodes.push_back({Node::kString, key, *text, index + 1});
    } else {
      const size_t begin = p;
      while (p < s.size() && IsScalarChar(s[p])) {
        ++p;
      }
      if (p == begin) {
        return false;
      }
      nodes.push_back({Node::kScalar, key, s.substr(begin, p - begin), index + 1});
    }
    // After a value: close containers until a comma says another value follows.
    for (bool more = false; !more; ++p) {
      skip();
      if (open.empty()) {
        return p == s.size();
      }
      if (p < s.size() && s[p] == ',') {
        more = true;
      } else if (p < s.size() && s[p] == closer(open.back())) {
        nodes[open.back()].end = nodes.size();
        open.pop_back();
      } else {
        return false;
      }
    }
  }
}

}  // namespace

bool ParseTree::ParseSql(std::string_view sql) {
  const std::string text(sql.substr(0, sql.find('\0')));
  PgQueryParseResult result = pg_query_parse(text.c_str());
  const bool ok = result.error == nullptr && result.parse_tree != nullptr;
  std::string json = ok ? std::string(result.parse_tree) : std::string();
  pg_query_free_parse_result(result);
  return ok && ParseJson(std::move(json));
}

bool ParseTree::ParseJson(std::string json) {
  json_ = std::move(json);
  nodes_.clear();
  if (!Flatten(json_, nodes_)) {
    nodes_.clear();
    return false;
  }
  return true;
}

size_t ParseTree::Member(size_t obj, std::string_view key) const {
  if (obj == kNone || nodes_[obj].kind != Node::kObject) {
    return kNone;
  }
  for (size_t c = First(obj); c != kNone; c = Next(obj, c)) {
    if (nodes_[c].key == key) {
      return c;
    }
  }
  return kNone;
}

std::string_view ParseTree::Type(size_t i, size_t* fields) const {
  const size_t c = First(i);
  if (c == kNone || nodes_[i].kind != Node::kObject || Next(i, c) != kNone ||
      nodes_[c].kind != Node::kObject) {
    return {};
  }
  *fields = c;
  return nodes_[c].key;
}

int64_t ParseTree::Int(size_t i) const {
  int64_t v = 0;
  const std::string_view t = Raw(i);
  std::from_chars(t.data(), t.data() + t.size(), v);
  return v;
}

std::string ParseTree::Str(size_t i) const {
  std::string out;
  if (i == kNone || nodes_[i].kind != Node::kString) {
    return out;
  }
  const std::string_view raw = nodes_[i].text;
  for (size_t k = 0; k < raw.size(); ++k) {
    if (raw[k] != '\\' || k + 1 >= raw.size()) {
      out.push_back(raw[k]);
      continue;
    }
    const char e = raw[++k];
    if (e == 'u' && k + 4 < raw.size()) {
      unsigned cp = 0;
      std::from_chars(raw.data() + k + 1, raw.data() + k + 5, cp, 16);
      k += 4;
      AppendUtf8(out, cp);
    } else {
      out.push_back(e == 'n'   ? '\n'
                    : e == 't' ? '\t'
                    : e == 'r' ? '\r'
                    : e == 'b' ? '\b'
                    : e == 'f' ? '\f'
                               : e);
    }
  }
  return out;
}

}  // namespace wirepool::codec::postgres
