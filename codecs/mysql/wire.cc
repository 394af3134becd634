#include "codecs/mysql/wire.h"

#include <algorithm>
#include <cstring>

namespace wirepool::codec::mysql {
namespace {

// Little-endian value of the `n` bytes at `p` (n <= 8).
uint64_t LoadLe(const uint8_t* p, size_t n) {
  uint64_t v = 0;
  for (size_t i = 0; i < n; ++i) {
    v |= static_cast<uint64_t>(p[i]) << (8 * i);
  }
  return v;
}

void StoreLe(std::string& out, uint64_t v, size_t n) {
  for (size_t i = 0; i < n; ++i) {
    out.push_back(static_cast<char>((v >> (8 * i)) & 0xff));
  }
}

std::string_view AsChars(ByteView v) {
  return std::string_view(reinterpret_cast<const char*>(v.data()), v.size());
}

constexpr uint8_t kOkHeader = 0x00;
constexpr uint8_t kEofHeader = 0xfe;
constexpr uint8_t kErrHeader = 0xff;
constexpr char kDefaultSqlState[] = "HY000";
constexpr size_t kSqlStateLen = 5;

}  // namespace

std::optional<PacketHeader> ReadHeader(ByteView in) {
  if (in.size() < kHeaderLen) {
    return std::nullopt;
  }
  return PacketHeader{static_cast<uint32_t>(LoadLe(in.data(), 3)), in[3]};
}

// ---- Reader ----------------------------------------------------------------------------------

std::optional<uint8_t> Reader::U8() {
  if (remaining() < 1) {
    return std::nullopt;
  }
  return p_[pos_++];
}

std::optional<uint16_t> Reader::U16() {
  if (remaining() < 2) {
    return std::nullopt;
  }
  uint16_t v = static_cast<uint16_t>(LoadLe(p_.data() + pos_, 2));
  pos_ += 2;
  return v;
}

std::optional<uint32_t> Reader::U24() {
  if (remaining() < 3) {
    return std::nullopt;
  }
  uint32_t v = static_cast<uint32_t>(LoadLe(p_.data() + pos_, 3));
  pos_ += 3;
  return v;
}

std::optional<uint32_t> Reader::U32() {
  if (remaining() < 4) {
    return std::nullopt;
  }
  uint32_t v = static_cast<uint32_t>(LoadLe(p_.data() + pos_, 4));
  pos_ += 4;
  return v;
}

std::optional<uint64_t> Reader::U64() {
  if (remaining() < 8) {
    return std::nullopt;
  }
  uint64_t v = LoadLe(p_.data() + pos_, 8);
  pos_ += 8;
  return v;
}

std::optional<uint64_t> Reader::LenencInt() {
  if (remaining() < 1) {
    return std::nullopt;
  }
  const uint8_t first = p_[pos_];
  size_t width = 0;
  if (first < 0xfb) {
    ++pos_;
    return first;
  } else if (first == 0xfc) {
    width = 2;
  } else if (first == 0xfd) {
    width = 3;
  } else if (first == 0xfe) {
    width = 8;
  } else {
    return std::nullopt;  // 0xfb (NULL in a row) or 0xff (ERR marker): not an integer
  }
  if (remaining() < 1 + width) {
    return std::nullopt;  // position unchanged
  }
  uint64_t v = LoadLe(p_.data() + pos_ + 1, width);
  pos_ += 1 + width;
  return v;
}

std::optional<std::string_view> Reader::LenencString() {
  const size_t start = pos_;
  std::optional<uint64_t> len = LenencInt();
  if (!len.has_value()) {
    return std::nullopt;
  }
  if (*len > remaining()) {
    pos_ = start;
    return std::nullopt;
  }
  return Bytes(static_cast<size_t>(*len));
}

std::optional<std::string_view> Reader::NulString() {
  if (remaining() == 0) {
    return std::nullopt;
  }
  const uint8_t* start = p_.data() + pos_;
  const void* nul = std::memchr(start, 0, remaining());
  if (nul == nullptr) {
    return std::nullopt;
  }
  const size_t len = static_cast<size_t>(static_cast<const uint8_t*>(nul) - start);
  pos_ += len + 1;
  return std::string_view(reinterpret_cast<const char*>(start), len);
}

std::optional<std::string_view> Reader::Bytes(size_t n) {
  if (remaining() < n) {
    return std::nullopt;
  }
  std::string_view v = AsChars(p_.subspan(pos_, n));
  pos_ += n;
  return v;
}

std::string_view Reader::Rest() {
  std::string_view v = AsChars(p_.subspan(pos_));
  pos_ = p_.size();
  return v;
}

// ---- Writer ----------------------------------------------------------------------------------

Writer& Writer::U8(uint8_t v) {
  buf_.push_back(static_cast<char>(v));
  return *this;
}

Writer& Writer::U16(uint16_t v) {
  StoreLe(buf_, v, 2);
  return *this;
}

Writer& Writer::U24(uint32_t v) {
  StoreLe(buf_, v, 3);
  return *this;
}

Writer& Writer::U32(uint32_t v) {
  StoreLe(buf_, v, 4);
  return *this;
}

Writer& Writer::U64(uint64_t v) {
  StoreLe(buf_, v, 8);
  return *this;
}

Writer& Writer::LenencInt(uint64_t v) {
  if (v < 0xfb) {
    buf_.push_back(static_cast<char>(v));
  } else if (v <= 0xffff) {
    buf_.push_back(static_cast<char>(0xfc));
    StoreLe(buf_, v, 2);
  } else if (v <= 0xffffff) {
    buf_.push_back(static_cast<char>(0xfd));
    StoreLe(buf_, v, 3);
  } else {
    buf_.push_back(static_cast<char>(0xfe));
    StoreLe(buf_, v, 8);
  }
  return *this;
}

Writer& Writer::LenencString(std::string_view s) {
  LenencInt(s.size());
  buf_.append(s);
  return *this;
}

Writer& Writer::NulString(std::string_view s) {
  buf_.append(s);
  buf_.push_back('\0');
  return *this;
}

Writer& Writer::Bytes(std::string_view s) {
  buf_.append(s);
  return *this;
}

std::string Writer::Packet(uint8_t seq) const { return FramePacket(buf_, seq); }

std::string FramePacket(std::string_view payload, uint8_t seq) {
  std::string out;
  out.reserve(payload.size() + kHeaderLen * (payload.size() / kMaxPayload + 1));
  size_t offset = 0;
  while (true) {
    const size_t n = std::min(payload.size() - offset, kMaxPayload);
    StoreLe(out, n, 3);
    out.push_back(static_cast<char>(seq));
    out.append(payload.substr(offset, n));
    offset += n;
    seq = static_cast<uint8_t>(seq + 1);
    // A chunk of exactly kMaxPayload says "more follows", so one must follow (empty if need be).
    if (n < kMaxPayload) {
      break;
    }
  }
  return out;
}

// ---- OK / ERR / EOF --------------------------------------------------------------------------

std::optional<OkPacket> ParseOk(ByteView payload, uint32_t capabilities) {
  Reader r(payload);
  std::optional<uint8_t> header = r.U8();
  if (!header.has_value()) {
    return std::nullopt;
  }
  if (*header == kEofHeader) {
    // An OK in place of an EOF (it is often under 9 bytes too); only with CLIENT_DEPRECATE_EOF.
    if ((capabilities & kDeprecateEof) == 0) {
      return std::nullopt;
    }
  } else if (*header != kOkHeader) {
    return std::nullopt;
  }
  OkPacket ok;
  std::optional<uint64_t> affected = r.LenencInt();
  std::optional<uint64_t> insert_id = affected ? r.LenencInt() : std::nullopt;
  if (!insert_id.has_value()) {
    return std::nullopt;
  }
  ok.affected_rows = *affected;
  ok.last_insert_id = *insert_id;
  if (capabilities & kProtocol41) {
    std::optional<uint16_t> status = r.U16();
    std::optional<uint16_t> warnings = status ? r.U16() : std::nullopt;
    if (!warnings.has_value()) {
      return std::nullopt;
    }
    ok.status = *status;
    ok.warnings = *warnings;
  } else if (capabilities & kTransactions) {
    std::optional<uint16_t> status = r.U16();
    if (!status.has_value()) {
      return std::nullopt;
    }
    ok.status = *status;
  }
  if (capabilities & kSessionTrack) {
    // Servers may leave out an empty info (MariaDB does); when present it is length-encoded.
    if (!r.done()) {
      std::optional<std::string_view> info = r.LenencString();
      if (!info.has_value()) {
        return std::nullopt;
      }
      ok.info = std::string(*info);
      if ((ok.status & kStatusSessionStateChanged) && !r.done()) {
        std::optional<std::string_view> state = r.LenencString();
        if (!state.has_value()) {
          return std::nullopt;
        }
        ok.session_state = std::string(*state);
      }
    }
  } else {
    ok.info = std::string(r.Rest());
  }
  return ok;
}

std::string OkPayload(const OkPacket& ok, uint32_t capabilities) {
  Writer w;
  w.U8(kOkHeader).LenencInt(ok.affected_rows).LenencInt(ok.last_insert_id);
  if (capabilities & kProtocol41) {
    w.U16(ok.status).U16(ok.warnings);
  } else if (capabilities & kTransactions) {
    w.U16(ok.status);
  }
  if (capabilities & kSessionTrack) {
    // Always written (as MySQL does): some clients read it unconditionally.
    w.LenencString(ok.info);
    if (ok.status & kStatusSessionStateChanged) {
      w.LenencString(ok.session_state);
    }
  } else {
    w.Bytes(ok.info);
  }
  return w.payload();
}

std::optional<ErrPacket> ParseErr(ByteView payload) {
  Reader r(payload);
  std::optional<uint8_t> header = r.U8();
  if (!header.has_value() || *header != kErrHeader) {
    return std::nullopt;
  }
  std::optional<uint16_t> code = r.U16();
  if (!code.has_value()) {
    return std::nullopt;
  }
  ErrPacket err;
  err.code = *code;
  err.sql_state = kDefaultSqlState;
  std::string_view rest = r.Rest();
  if (rest.size() >= 1 + kSqlStateLen && rest[0] == '#') {
    err.sql_state = std::string(rest.substr(1, kSqlStateLen));
    rest.remove_prefix(1 + kSqlStateLen);
  }
  err.message = std::string(rest);
  return err;
}

std::string ErrPayload(uint16_t code, std::string_view sql_state, std::string_view message) {
  if (sql_state.size() != kSqlStateLen) {
    sql_state = kDefaultSqlState;  // the field is fixed-width; anything else would shift the text
  }
  Writer w;
  w.U8(kErrHeader).U16(code).U8('#').Bytes(sql_state).Bytes(message);
  return w.payload();
}

bool IsEof(ByteView payload) {
  return !payload.empty() && payload[0] == kEofHeader && payload.size() < 9;
}

std::optional<uint16_t> EofStatus(ByteView payload) {
  if (!IsEof(payload) || payload.size() < 5) {
    return std::nullopt;
  }
  // 0xfe, warnings (2), status (2).
  return static_cast<uint16_t>(LoadLe(payload.data() + 3, 2));
}

MysqlError ErrorFor(ProxyError error) {
  switch (error) {
    case ProxyError::kProtocolViolation:
      return {1156, "08S01"};  // ER_NET_PACKETS_OUT_OF_ORDER
    case ProxyError::kAuthFailed:
      return {1045, "28000"};  // ER_ACCESS_DENIED_ERROR
    case ProxyError::kTooManyClients:
      return {1040, "08004"};  // ER_CON_COUNT_ERROR
    case ProxyError::kPoolTimeout:
      return {1040, "08004"};
    case ProxyError::kServerUnavailable:
      return {1158, "08S01"};  // ER_NET_READ_ERROR
    case ProxyError::kServerLost:
      return {1158, "08S01"};
    case ProxyError::kLoginTimeout:
      return {1159, "08S01"};  // ER_NET_READ_INTERRUPTED
    case ProxyError::kNotSupported:
      return {1235, "42000"};  // ER_NOT_SUPPORTED_YET
    case ProxyError::kShuttingDown:
      return {1053, "08S01"};  // ER_SERVER_SHUTDOWN
    case ProxyError::kKilled:
      return {1927, "70100"};  // ER_CONNECTION_KILLED
    case ProxyError::kIdleTransactionTimeout:
      return {4031, "HY000"};  // ER_CLIENT_INTERACTION_TIMEOUT (MySQL 8)
    case ProxyError::kTooManyWaiting:
      return {1040, "08004"};
    case ProxyError::kTlsRequired:
      return {3159, "HY000"};  // ER_SECURE_TRANSPORT_REQUIRED
    case ProxyError::kInternal:
      return {1105, "HY000"};  // ER_UNKNOWN_ERROR
  }
  return {1105, "HY000"};
}

}  // namespace wirepool::codec::mysql
