#pragma once

// Byte-level helpers for PostgreSQL protocol 3.0: big-endian integers, NUL-terminated strings,
// and a builder for the messages the proxy writes itself. Readers never read past their span.

#include <cstddef>
#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <string_view>

#include "codecs/api/codec.h"

namespace wirepool::codec::postgres {

constexpr uint32_t kProtocol30 = 196608;  // 3 << 16
constexpr uint32_t kSslRequestCode = 80877103;
// The first byte of a TLS handshake record: a client that opens with TLS directly.
constexpr uint8_t kTlsHandshakeRecord = 0x16;
constexpr uint32_t kGssEncRequestCode = 80877104;
constexpr uint32_t kCancelRequestCode = 80877102;
constexpr size_t kHeaderLen = 5;  // type byte + int32 length

inline uint32_t ReadU32(const uint8_t* p) {
  return (uint32_t{p[0]} << 24) | (uint32_t{p[1]} << 16) | (uint32_t{p[2]} << 8) | uint32_t{p[3]};
}

// Walks a message body.
class Reader {
 public:
  explicit Reader(ByteView body) : body_(body) {}
  std::optional<uint32_t> U32();
  std::optional<uint16_t> U16();
  std::optional<uint8_t> U8();
  std::optional<std::string_view> CString();
  std::optional<std::string_view> Bytes(size_t n);
  std::string_view Rest();
  bool done() const { return pos_ == body_.size(); }

 private:
  ByteView body_;
  size_t pos_ = 0;
};

// Builds one message: Begin, fields, then Take.
class Writer {
 public:
  Writer& Begin(char type);
  Writer& BeginUntyped();  // startup-family packets carry no type byte
  Writer& U32(uint32_t v);
  Writer& U16(uint16_t v);
  Writer& U8(uint8_t v);
  Writer& CString(std::string_view s);
  Writer& Bytes(std::string_view s);
  // Fills in the length and returns the message bytes.
  std::string Take();

 private:
  std::string buf_;
  size_t length_at_ = 0;
};

// ErrorResponse / NoticeResponse fields.
struct ErrorFields {
  std::string severity;
  std::string code;
  std::string message;
};
// Parses the body of an 'E' or 'N' message.
std::optional<ErrorFields> ParseErrorFields(ByteView body);
std::string ErrorResponse(std::string_view severity, std::string_view code,
                          std::string_view message);
std::string QueryMessage(std::string_view sql);
std::string CommandComplete(std::string_view tag);
std::string ReadyForQuery(char status);
std::string ParameterStatus(std::string_view name, std::string_view value);

// The SQLSTATE for each error the proxy raises (the one place that maps them).
std::string_view SqlState(ProxyError error);

// A SQL identifier / literal quoted so that any bytes from a client are inert.
std::string QuoteIdent(std::string_view s);
std::string QuoteLiteral(std::string_view s);

}  // namespace wirepool::codec::postgres
