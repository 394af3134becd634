#include "codecs/postgres/wire.h"

#include <cstring>

namespace wirepool::codec::postgres {

std::optional<uint32_t> Reader::U32() {
  if (body_.size() - pos_ < 4) {
    return std::nullopt;
  }
  uint32_t v = ReadU32(body_.data() + pos_);
  pos_ += 4;
  return v;
}

std::optional<uint16_t> Reader::U16() {
  if (body_.size() - pos_ < 2) {
    return std::nullopt;
  }
  uint16_t v = static_cast<uint16_t>((body_[pos_] << 8) | body_[pos_ + 1]);
  pos_ += 2;
  return v;
}

std::optional<uint8_t> Reader::U8() {
  if (pos_ >= body_.size()) {
    return std::nullopt;
  }
  return body_[pos_++];
}

std::optional<std::string_view> Reader::CString() {
  const uint8_t* start = body_.data() + pos_;
  const void* nul = std::memchr(start, 0, body_.size() - pos_);
  if (nul == nullptr) {
    return std::nullopt;
  }
  size_t len = static_cast<size_t>(static_cast<const uint8_t*>(nul) - start);
  pos_ += len + 1;
  return std::string_view(reinterpret_cast<const char*>(start), len);
}

std::optional<std::string_view> Reader::Bytes(size_t n) {
  if (body_.size() - pos_ < n) {
    return std::nullopt;
  }
  std::string_view v(reinterpret_cast<const char*>(body_.data() + pos_), n);
  pos_ += n;
  return v;
}

std::string_view Reader::Rest() {
  std::string_view v(reinterpret_cast<const char*>(body_.data() + pos_), body_.size() - pos_);
  pos_ = body_.size();
  return v;
}

Writer& Writer::Begin(char type) {
  buf_.clear();
  buf_.push_back(type);
  length_at_ = 1;
  buf_.append(4, '\0');
  return *this;
}

Writer& Writer::BeginUntyped() {
  buf_.clear();
  length_at_ = 0;
  buf_.append(4, '\0');
  return *this;
}

Writer& Writer::U32(uint32_t v) {
  char b[4] = {static_cast<char>(v >> 24), static_cast<char>(v >> 16), static_cast<char>(v >> 8),
               static_cast<char>(v)};
  buf_.append(b, 4);
  return *this;
}

Writer& Writer::U16(uint16_t v) {
  buf_.push_back(static_cast<char>(v >> 8));
  buf_.push_back(static_cast<char>(v));
  return *this;
}

Writer& Writer::U8(uint8_t v) {
  buf_.push_back(static_cast<char>(v));
  return *this;
}

Writer& Writer::CString(std::string_view s) {
  buf_.append(s);
  buf_.push_back('\0');
  return *this;
}

Writer& Writer::Bytes(std::string_view s) {
  buf_.append(s);
  return *this;
}

std::string Writer::Take() {
  uint32_t len = static_cast<uint32_t>(buf_.size() - length_at_);
  buf_[length_at_] = static_cast<char>(len >> 24);
  buf_[length_at_ + 1] = static_cast<char>(len >> 16);
  buf_[length_at_ + 2] = static_cast<char>(len >> 8);
  buf_[length_at_ + 3] = static_cast<char>(len);
  return std::move(buf_);
}

std::optional<ErrorFields> ParseErrorFields(ByteView body) {
  Reader r(body);
  ErrorFields f;
  while (true) {
    auto type = r.U8();
    if (!type) {
      return std::nullopt;
    }
    if (*type == 0) {
      break;
    }
    auto value = r.CString();
    if (!value) {
      return std::nullopt;
    }
    switch (*type) {
      case 'V':
        f.severity = std::string(*value);
        break;
      case 'S':
        if (f.severity.empty()) {
          f.severity = std::string(*value);
        }
        break;
      case 'C':
        f.code = std::string(*value);
        break;
      case 'M':
        f.message = std::string(*value);
        break;
      default:
        break;
    }
  }
  return f;
}

std::string ErrorResponse(std::string_view severity, std::string_view code,
                          std::string_view message) {
  Writer w;
  w.Begin('E');
  w.U8('S').CString(severity).U8('V').CString(severity);
  w.U8('C').CString(code).U8('M').CString(message).U8(0);
  return w.Take();
}

std::string QueryMessage(std::string_view sql) {
  Writer w;
  return w.Begin('Q').CString(sql).Take();
}

std::string CommandComplete(std::string_view tag) {
  Writer w;
  return w.Begin('C').CString(tag).Take();
}

std::string ReadyForQuery(char status) {
  Writer w;
  return w.Begin('Z').U8(static_cast<uint8_t>(status)).Take();
}

std::string ParameterStatus(std::string_view name, std::string_view value) {
  Writer w;
  return w.Begin('S').CString(name).CString(value).Take();
}

std::string_view SqlState(ProxyError error) {
  switch (error) {
    case ProxyError::kProtocolViolation:
      return "08P01";
    case ProxyError::kAuthFailed:
      return "28P01";
    case ProxyError::kTooManyClients:
    case ProxyError::kPoolTimeout:
      return "53300";
    case ProxyError::kServerUnavailable:
    case ProxyError::kServerLost:
    case ProxyError::kLoginTimeout:
      return "08006";
    case ProxyError::kNotSupported:
      return "0A000";
    case ProxyError::kShuttingDown:
    case ProxyError::kKilled:
      return "57P01";
    case ProxyError::kIdleTransactionTimeout:
      return "25P03";  // idle_in_transaction_session_timeout
    case ProxyError::kTooManyWaiting:
      return "53300";
    case ProxyError::kTlsRequired:
      return "28000";  // invalid_authorization_specification, as pg_hba's hostssl refusal
    case ProxyError::kInternal:
      return "XX000";
  }
  return "XX000";
}

std::string QuoteIdent(std::string_view s) {
  std::string out = "\"";
  for (char c : s) {
    if (c == '"') {
      out.push_back('"');
    }
    out.push_back(c);
  }
  out.push_back('"');
  return out;
}

std::string QuoteLiteral(std::string_view s) {
  // E'' form so that backslashes are unambiguous whatever standard_conforming_strings says.
  std::string out = "E'";
  for (char c : s) {
    if (c == '\'' || c == '\\') {
      out.push_back(c);
    }
    out.push_back(c);
  }
  out.push_back('\'');
  return out;
}

}  // namespace wirepool::codec::postgres
