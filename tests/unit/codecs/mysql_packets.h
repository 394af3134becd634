#pragma once

// MySQL packets for the scripted codec tests: a MariaDB 10.11 handshake and the answers a server
// or a libmariadb-like client sends, built with the codec's own Writer.

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "codecs/api/codec.h"
#include "codecs/mysql/auth.h"
#include "codecs/mysql/client_codec.h"
#include "codecs/mysql/server_codec.h"
#include "codecs/mysql/wire.h"
#include "core/strings.h"

namespace wirepool::codec::mysql::testing {

constexpr uint32_t kMariaDbCaps = 0x81fff7fe;  // as MariaDB 10.11 announces them
constexpr char kPassword[] = "s3cret-pw";
constexpr char kScramble[] = "abcdefghijklmnopqrst";

// A libmariadb-like client without connection attributes.
constexpr uint32_t kClientCaps = kLongPassword | kLongFlag | kConnectWithDb | kProtocol41 |
                                 kTransactions | kSecureConnection | kMultiStatements |
                                 kMultiResults | kPsMultiResults | kPluginAuth |
                                 kPluginAuthLenencClientData | kSessionTrack | kDeprecateEof;

inline std::string Pkt(uint8_t seq, std::string_view payload) { return FramePacket(payload, seq); }

inline std::string Packets(uint8_t first_seq, const std::vector<std::string>& payloads) {
  std::string out;
  for (const std::string& p : payloads) {
    out += Pkt(first_seq++, p);
  }
  return out;
}

inline std::string Handshake() {
  std::string_view scramble = kScramble;
  Writer w;
  w.U8(10).NulString("5.5.5-10.11.6-MariaDB").U32(4711).Bytes(scramble.substr(0, 8)).U8(0);
  w.U16(static_cast<uint16_t>(kMariaDbCaps & 0xffff)).U8(45).U16(kStatusAutocommit);
  w.U16(static_cast<uint16_t>(kMariaDbCaps >> 16));
  w.U8(21).Bytes(std::string(6, '\0')).U32(0x1d).Bytes(scramble.substr(8)).U8(0);
  w.NulString("mysql_native_password");
  return Pkt(0, w.payload());
}

inline std::string Ok(uint16_t status = kStatusAutocommit, std::string session_state = "") {
  OkPacket ok;
  ok.status =
      static_cast<uint16_t>(status | (session_state.empty() ? 0 : kStatusSessionStateChanged));
  ok.session_state = std::move(session_state);
  return OkPayload(ok, kProtocol41 | kSessionTrack);
}

// An OK in place of an EOF (CLIENT_DEPRECATE_EOF).
inline std::string OkFe() {
  std::string p = Ok();
  p[0] = static_cast<char>(0xfe);
  return p;
}

inline std::string Eof() { return Writer().U8(0xfe).U16(0).U16(kStatusAutocommit).payload(); }

inline std::string Err(uint16_t code, std::string_view message) {
  return ErrPayload(code, "42000", message);
}

inline std::string ColumnCount(uint64_t n) { return Writer().LenencInt(n).payload(); }

inline std::string ColumnDef(std::string_view name) {
  Writer w;
  w.LenencString("def").LenencString("").LenencString("").LenencString("");
  w.LenencString(name).LenencString("").LenencInt(0x0c).U16(45).U32(80).U8(0xfd).U16(0).U8(0);
  w.U16(0);
  return w.payload();
}

inline ServerLogin Login(bool deprecate_eof = true) {
  ServerLogin login;
  login.user = "wp_user";
  login.password = kPassword;
  login.database = "wp_db";
  login.random = [](uint8_t* out, size_t len) { std::fill(out, out + len, 0x42); };
  if (!deprecate_eof) {
    login.options = {
        {"client_flags", Cat(ServerCodec::kDefaultClientFlags & ~uint32_t{kDeprecateEof})}};
  }
  return login;
}

// The answer to the proxy's handshake, whose scramble CounterRandom makes 0x10 0x11 ... 0x23.
inline std::string ClientLogin() {
  std::string scramble;
  for (char c = 0x10; c < 0x24; ++c) {
    scramble.push_back(c);
  }
  Writer w;
  w.U32(kClientCaps).U32(16 << 20).U8(45).Bytes(std::string(23, '\0')).NulString("alice");
  w.LenencString(NativePasswordResponse("alice-pw", scramble)).NulString("");
  w.NulString(kNativePassword);
  return Pkt(1, w.payload());
}

inline std::string CommandPacket(uint8_t command, std::string_view rest = {}) {
  return Pkt(0, Cat(static_cast<char>(command), rest));
}
inline std::string QueryPacket(std::string_view sql) { return CommandPacket(kComQuery, sql); }

}  // namespace wirepool::codec::mysql::testing
