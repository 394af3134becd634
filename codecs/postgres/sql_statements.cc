#include "codecs/postgres/sql_statements.h"

#include <string>
#include <utility>

namespace wirepool::codec::postgres {
namespace {

constexpr std::string_view kParamPrefix = "\x01prepared:";
constexpr std::string_view kPlaceholderPrefix = "\x01placeholder:";

bool IsKind(char c) {
  switch (c) {
    case SqlOp::kOther:
    case SqlOp::kPrepare:
    case SqlOp::kDeallocate:
    case SqlOp::kDeallocateAll:
    case SqlOp::kDiscardAll:
      return true;
    default:
      return false;
  }
}

}  // namespace

// "I" or "F" (intercepted or forwarded), then for each op its kind byte, name, NUL, text, NUL.
std::string EncodeSqlOps(const SqlOps& ops) {
  std::string out(1, ops.intercepted ? 'I' : 'F');
  for (const SqlOp& op : ops.ops) {
    out.push_back(static_cast<char>(op.kind));
    out += op.name.substr(0, op.name.find('\0'));
    out.push_back('\0');
    out += op.text.substr(0, op.text.find('\0'));
    out.push_back('\0');
  }
  return out;
}

std::optional<SqlOps> DecodeSqlOps(std::string_view key) {
  if (key.empty() || (key[0] != 'I' && key[0] != 'F')) {
    return std::nullopt;
  }
  SqlOps ops;
  ops.intercepted = key[0] == 'I';
  size_t pos = 1;
  while (pos < key.size()) {
    SqlOp op;
    if (!IsKind(key[pos])) {
      return std::nullopt;
    }
    op.kind = static_cast<SqlOp::Kind>(key[pos++]);
    size_t name_end = key.find('\0', pos);
    if (name_end == std::string_view::npos) {
      return std::nullopt;
    }
    size_t text_end = key.find('\0', name_end + 1);
    if (text_end == std::string_view::npos) {
      return std::nullopt;
    }
    op.name = std::string(key.substr(pos, name_end - pos));
    op.text = std::string(key.substr(name_end + 1, text_end - name_end - 1));
    ops.ops.push_back(std::move(op));
    pos = text_end + 1;
  }
  return ops;
}

std::string SqlStatementParam(std::string_view name) {
  return std::string(kParamPrefix) + std::string(name);
}

std::optional<std::string_view> SqlStatementOfParam(std::string_view param) {
  if (!param.starts_with(kParamPrefix)) {
    return std::nullopt;
  }
  return param.substr(kParamPrefix.size());
}

std::string PlaceholderKey(std::string_view name) {
  return std::string(kPlaceholderPrefix) + std::string(name);
}

std::optional<std::string_view> PlaceholderOfKey(std::string_view key) {
  if (!key.starts_with(kPlaceholderPrefix)) {
    return std::nullopt;
  }
  return key.substr(kPlaceholderPrefix.size());
}

std::string PlaceholderParseBody() {
  // "SELECT", its NUL, and no parameter types.
  return std::string("SELECT\0\0\0", 9);
}

}  // namespace wirepool::codec::postgres
