#pragma once

// Byte-level helpers for the MySQL/MariaDB client/server protocol: packet headers (3-byte
// length + sequence id), little-endian integers, length-encoded integers and strings, and the
// generic OK / ERR / EOF packets. Readers never read past their span; a malformed field yields
// nullopt, never a crash.

#include <cstddef>
#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <string_view>

#include "codecs/api/codec.h"

namespace wirepool::codec::mysql {

constexpr size_t kHeaderLen = 4;
constexpr size_t kMaxPayload = 0xffffff;  // a payload of exactly this size continues in the next

// Capability flags (lower and upper 16 bits of the 32-bit field).
enum Capability : uint32_t {
  kLongPassword = 1u << 0,  // "CLIENT_MYSQL" for MariaDB: cleared by a MariaDB server
  kFoundRows = 1u << 1,
  kLongFlag = 1u << 2,
  kConnectWithDb = 1u << 3,
  kNoSchema = 1u << 4,
  kCompress = 1u << 5,
  kOdbc = 1u << 6,
  kLocalFiles = 1u << 7,
  kIgnoreSpace = 1u << 8,
  kProtocol41 = 1u << 9,
  kInteractive = 1u << 10,
  kSsl = 1u << 11,
  kIgnoreSigpipe = 1u << 12,
  kTransactions = 1u << 13,
  kReserved = 1u << 14,
  kSecureConnection = 1u << 15,
  kMultiStatements = 1u << 16,
  kMultiResults = 1u << 17,
  kPsMultiResults = 1u << 18,
  kPluginAuth = 1u << 19,
  kConnectAttrs = 1u << 20,
  kPluginAuthLenencClientData = 1u << 21,
  kCanHandleExpiredPasswords = 1u << 22,
  kSessionTrack = 1u << 23,
  kDeprecateEof = 1u << 24,
  kOptionalResultsetMetadata = 1u << 25,
  kQueryAttributes = 1u << 27,
  kSslVerifyServerCert = 1u << 30,
  kRememberOptions = 1u << 31,
};

// Server status flags (OK / EOF packets).
enum ServerStatus : uint16_t {
  kStatusInTrans = 1u << 0,
  kStatusAutocommit = 1u << 1,
  kStatusMoreResultsExist = 1u << 3,
  kStatusNoGoodIndexUsed = 1u << 4,
  kStatusNoIndexUsed = 1u << 5,
  kStatusCursorExists = 1u << 6,
  kStatusLastRowSent = 1u << 7,
  kStatusDbDropped = 1u << 8,
  kStatusNoBackslashEscapes = 1u << 9,
  kStatusMetadataChanged = 1u << 10,
  kStatusQueryWasSlow = 1u << 11,
  kStatusPsOutParams = 1u << 12,
  kStatusInTransReadonly = 1u << 13,
  kStatusSessionStateChanged = 1u << 14,
};

// Commands (first payload byte of a client packet with sequence id 0).
enum Command : uint8_t {
  kComSleep = 0x00,
  kComQuit = 0x01,
  kComInitDb = 0x02,
  kComQuery = 0x03,
  kComFieldList = 0x04,
  kComStatistics = 0x09,
  kComProcessKill = 0x0c,
  kComPing = 0x0e,
  kComChangeUser = 0x11,
  kComStmtPrepare = 0x16,
  kComStmtExecute = 0x17,
  kComStmtSendLongData = 0x18,
  kComStmtClose = 0x19,
  kComStmtReset = 0x1a,
  kComSetOption = 0x1b,
  kComStmtFetch = 0x1c,
  kComResetConnection = 0x1f,
};

// Set in a request tag (ClientCodecSink::OnRequestEnd) when the command spans several packets
// (16 MiB or more): the server's answer then starts past sequence id 1.
constexpr uint32_t kTagMultiPacket = 0x100;

struct PacketHeader {
  uint32_t length;  // payload length
  uint8_t seq;
};

// Reads the 4-byte header at the front of `in` (nullopt if fewer than 4 bytes).
std::optional<PacketHeader> ReadHeader(ByteView in);

// Walks a packet payload (little-endian).
class Reader {
 public:
  explicit Reader(ByteView payload) : p_(payload) {}
  std::optional<uint8_t> U8();
  std::optional<uint16_t> U16();
  std::optional<uint32_t> U24();
  std::optional<uint32_t> U32();
  std::optional<uint64_t> U64();
  std::optional<uint64_t> LenencInt();  // nullopt on 0xff or truncation
  std::optional<std::string_view> LenencString();
  std::optional<std::string_view> NulString();  // up to and without the NUL
  std::optional<std::string_view> Bytes(size_t n);
  std::string_view Rest();
  size_t remaining() const { return p_.size() - pos_; }
  bool done() const { return pos_ == p_.size(); }

 private:
  ByteView p_;
  size_t pos_ = 0;
};

// Builds a payload; Packet() frames it (splitting payloads of 16 MiB and more).
class Writer {
 public:
  Writer& U8(uint8_t v);
  Writer& U16(uint16_t v);
  Writer& U24(uint32_t v);
  Writer& U32(uint32_t v);
  Writer& U64(uint64_t v);
  Writer& LenencInt(uint64_t v);
  Writer& LenencString(std::string_view s);
  Writer& NulString(std::string_view s);
  Writer& Bytes(std::string_view s);
  const std::string& payload() const { return buf_; }
  // The payload framed as one or more packets starting at sequence id `seq`.
  std::string Packet(uint8_t seq) const;

 private:
  std::string buf_;
};

std::string FramePacket(std::string_view payload, uint8_t seq);

struct OkPacket {
  uint64_t affected_rows = 0;
  uint64_t last_insert_id = 0;
  uint16_t status = 0;
  uint16_t warnings = 0;
  std::string info;
  std::string session_state;  // raw session-track data, when CLIENT_SESSION_TRACK and flagged
};
// Parses an OK packet payload (first byte 0x00, or 0xfe with CLIENT_DEPRECATE_EOF).
std::optional<OkPacket> ParseOk(ByteView payload, uint32_t capabilities);
std::string OkPayload(const OkPacket& ok, uint32_t capabilities);

struct ErrPacket {
  uint16_t code = 0;
  std::string sql_state;  // five characters, "HY000" when absent
  std::string message;
};
// Parses an ERR packet payload (first byte 0xff).
std::optional<ErrPacket> ParseErr(ByteView payload);
std::string ErrPayload(uint16_t code, std::string_view sql_state, std::string_view message);

// An EOF packet payload: 0xfe with a length under 9.
bool IsEof(ByteView payload);
std::optional<uint16_t> EofStatus(ByteView payload);  // status flags of a 4.1 EOF

// The MySQL error number and SQLSTATE for each error the proxy raises (the one place).
struct MysqlError {
  uint16_t code;
  const char* sql_state;
};
MysqlError ErrorFor(ProxyError error);

}  // namespace wirepool::codec::mysql
