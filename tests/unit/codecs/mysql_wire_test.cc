#include "codecs/mysql/wire.h"

#include <cstdint>
#include <limits>
#include <random>
#include <string>
#include <vector>

#include "gtest/gtest.h"

namespace wirepool::codec::mysql {
namespace {

ByteView Bv(std::string_view s) {
  return ByteView(reinterpret_cast<const uint8_t*>(s.data()), s.size());
}

std::string Unhex(std::string_view hex) {
  std::string out;
  for (size_t i = 0; i + 1 < hex.size(); i += 2) {
    out.push_back(static_cast<char>(std::stoi(std::string(hex.substr(i, 2)), nullptr, 16)));
  }
  return out;
}

// Capabilities a modern client and MariaDB 10.11 agree on.
constexpr uint32_t kModernCaps =
    kProtocol41 | kTransactions | kSecureConnection | kPluginAuth | kSessionTrack | kDeprecateEof;

// Splits framed bytes back into packets: (seq, payload) pairs.
struct Framed {
  uint8_t seq;
  std::string payload;
};
std::vector<Framed> Unframe(std::string_view bytes) {
  std::vector<Framed> out;
  while (!bytes.empty()) {
    std::optional<PacketHeader> h = ReadHeader(Bv(bytes));
    EXPECT_TRUE(h.has_value());
    if (!h.has_value() || bytes.size() < kHeaderLen + h->length) {
      ADD_FAILURE() << "truncated frame";
      break;
    }
    out.push_back({h->seq, std::string(bytes.substr(kHeaderLen, h->length))});
    bytes.remove_prefix(kHeaderLen + h->length);
  }
  return out;
}

// ---- header ----------------------------------------------------------------------------------

TEST(MysqlWireTest, ReadHeader) {
  EXPECT_FALSE(ReadHeader(Bv("")).has_value());
  EXPECT_FALSE(ReadHeader(Bv(Unhex("010203"))).has_value());
  std::optional<PacketHeader> h = ReadHeader(Bv(Unhex("010203ffaa")));
  ASSERT_TRUE(h.has_value());
  EXPECT_EQ(h->length, 0x030201u);
  EXPECT_EQ(h->seq, 0xff);
  h = ReadHeader(Bv(Unhex("ffffff00")));
  ASSERT_TRUE(h.has_value());
  EXPECT_EQ(h->length, kMaxPayload);
}

// ---- Reader / Writer -------------------------------------------------------------------------

TEST(MysqlWireTest, FixedIntegersLittleEndian) {
  const std::string bytes = Unhex(
      "01"
      "0201"
      "030201"
      "04030201"
      "0807060504030201");
  Reader r(Bv(bytes));
  EXPECT_EQ(r.U8(), 0x01);
  EXPECT_EQ(r.U16(), 0x0102);
  EXPECT_EQ(r.U24(), 0x010203u);
  EXPECT_EQ(r.U32(), 0x01020304u);
  EXPECT_EQ(r.U64(), 0x0102030405060708ull);
  EXPECT_TRUE(r.done());
  EXPECT_FALSE(r.U8().has_value());

  Writer w;
  w.U8(0x01).U16(0x0102).U24(0x010203).U32(0x01020304).U64(0x0102030405060708ull);
  EXPECT_EQ(w.payload(), bytes);
}

TEST(MysqlWireTest, FixedIntegersTruncated) {
  const std::string bytes = Unhex("01020304050607");
  for (size_t n = 0; n < bytes.size(); ++n) {
    ByteView v = Bv(std::string_view(bytes).substr(0, n));
    if (n < 2) {
      EXPECT_FALSE(Reader(v).U16().has_value());
    }
    if (n < 3) {
      EXPECT_FALSE(Reader(v).U24().has_value());
    }
    if (n < 4) {
      EXPECT_FALSE(Reader(v).U32().has_value());
    }
    EXPECT_FALSE(Reader(v).U64().has_value());
  }
  // A failed read consumes nothing.
  const std::string r_bytes = Unhex("0102");
  Reader r(Bv(r_bytes));
  EXPECT_FALSE(r.U32().has_value());
  EXPECT_EQ(r.remaining(), 2u);
  EXPECT_EQ(r.U16(), 0x0201);
}

struct LenencCase {
  uint64_t value;
  std::string hex;
};

TEST(MysqlWireTest, LenencIntEdgeValues) {
  const std::vector<LenencCase> cases = {
      {0, "00"},
      {1, "01"},
      {250, "fa"},
      {251, "fcfb00"},
      {252, "fcfc00"},
      {0xffff, "fcffff"},
      {0x10000, "fd000001"},
      {0xffffff, "fdffffff"},
      {0x1000000, "fe0000000100000000"},
      {0xffffffffull, "feffffffff00000000"},
      {std::numeric_limits<uint64_t>::max(), "feffffffffffffffff"},
  };
  for (const LenencCase& c : cases) {
    SCOPED_TRACE(c.value);
    Writer w;
    w.LenencInt(c.value);
    EXPECT_EQ(w.payload(), Unhex(c.hex));
    Reader r(Bv(w.payload()));
    EXPECT_EQ(r.LenencInt(), c.value);
    EXPECT_TRUE(r.done());
    // Every strict prefix is a truncation, and consumes nothing.
    for (size_t n = 0; n < w.payload().size(); ++n) {
      Reader t(Bv(std::string_view(w.payload()).substr(0, n)));
      EXPECT_FALSE(t.LenencInt().has_value()) << n;
      EXPECT_EQ(t.remaining(), n);
    }
  }
}

TEST(MysqlWireTest, LenencIntNullAndErrMarkersAreNotIntegers) {
  for (const char* hex : {"fb", "ff", "fb0000", "ffffffffffffffffff"}) {
    const std::string bytes = Unhex(hex);
    Reader r(Bv(bytes));
    EXPECT_FALSE(r.LenencInt().has_value()) << hex;
    EXPECT_EQ(r.remaining(), bytes.size());
  }
}

TEST(MysqlWireTest, LenencString) {
  Writer w;
  const std::string long_string(300, 'x');
  w.LenencString("").LenencString("abc").LenencString(long_string);
  EXPECT_EQ(w.payload().substr(0, 5), Unhex("0003616263"));
  EXPECT_EQ(w.payload().substr(5, 3), Unhex("fc2c01"));
  Reader r(Bv(w.payload()));
  EXPECT_EQ(r.LenencString(), "");
  EXPECT_EQ(r.LenencString(), "abc");
  EXPECT_EQ(r.LenencString(), long_string);
  EXPECT_TRUE(r.done());
  EXPECT_FALSE(r.LenencString().has_value());
}

TEST(MysqlWireTest, LenencStringTruncatedOrHuge) {
  // Length says 4, three bytes follow.
  const std::string a_bytes = Unhex("04616263");
  Reader a(Bv(a_bytes));
  EXPECT_FALSE(a.LenencString().has_value());
  EXPECT_EQ(a.remaining(), 4u);
  // Length 2^64-1: must not overflow or allocate.
  const std::string b_bytes = Unhex("feffffffffffffffff6162");
  Reader b(Bv(b_bytes));
  EXPECT_FALSE(b.LenencString().has_value());
  // NULL marker.
  const std::string c_bytes = Unhex("fb");
  Reader c(Bv(c_bytes));
  EXPECT_FALSE(c.LenencString().has_value());
}

TEST(MysqlWireTest, NulStringAndBytes) {
  const std::string bytes = std::string("root\0\0tail", 10);
  Reader r(Bv(bytes));
  EXPECT_EQ(r.NulString(), "root");
  EXPECT_EQ(r.NulString(), "");
  EXPECT_FALSE(r.NulString().has_value());  // "tail" has no NUL
  EXPECT_EQ(r.remaining(), 4u);
  EXPECT_FALSE(r.Bytes(5).has_value());
  EXPECT_EQ(r.Bytes(2), "ta");
  EXPECT_EQ(r.Rest(), "il");
  EXPECT_TRUE(r.done());
  EXPECT_EQ(r.Rest(), "");
  EXPECT_EQ(r.Bytes(0), "");

  Reader empty(ByteView{});
  EXPECT_FALSE(empty.NulString().has_value());
  EXPECT_FALSE(empty.U8().has_value());
  EXPECT_FALSE(empty.LenencInt().has_value());
  EXPECT_EQ(empty.Rest(), "");

  Writer w;
  w.NulString("db").Bytes("xy");
  EXPECT_EQ(w.payload(), std::string("db\0xy", 5));
}

// ---- framing ---------------------------------------------------------------------------------

TEST(MysqlWireTest, FrameSmallAndEmpty) {
  EXPECT_EQ(FramePacket("", 0), Unhex("00000000"));
  EXPECT_EQ(FramePacket("\x03SELECT 1", 0), Unhex("090000") + std::string("\x00\x03SELECT 1", 10));
  Writer w;
  w.U8(kComPing);
  EXPECT_EQ(w.Packet(7), Unhex("010000070e"));
}

TEST(MysqlWireTest, FrameExactlyMaxPayloadIsFollowedByEmptyPacket) {
  const std::string payload(kMaxPayload, 'a');
  const std::string framed = FramePacket(payload, 3);
  EXPECT_EQ(framed.size(), payload.size() + 2 * kHeaderLen);
  std::vector<Framed> packets = Unframe(framed);
  ASSERT_EQ(packets.size(), 2u);
  EXPECT_EQ(packets[0].seq, 3);
  EXPECT_EQ(packets[0].payload.size(), kMaxPayload);
  EXPECT_EQ(packets[1].seq, 4);
  EXPECT_TRUE(packets[1].payload.empty());
}

TEST(MysqlWireTest, FrameJustUnderMaxPayloadIsOnePacket) {
  const std::string payload(kMaxPayload - 1, 'b');
  std::vector<Framed> packets = Unframe(FramePacket(payload, 0));
  ASSERT_EQ(packets.size(), 1u);
  EXPECT_EQ(packets[0].payload.size(), kMaxPayload - 1);
}

TEST(MysqlWireTest, FrameOver16MiBSplitsAndWrapsSequence) {
  // Two full chunks and a tail of 5; starting at 255 the sequence wraps to 0 and 1.
  std::string payload(2 * kMaxPayload + 5, '\0');
  for (size_t i = 0; i < payload.size(); ++i) {
    payload[i] = static_cast<char>(i * 7);
  }
  std::vector<Framed> packets = Unframe(FramePacket(payload, 255));
  ASSERT_EQ(packets.size(), 3u);
  EXPECT_EQ(packets[0].seq, 255);
  EXPECT_EQ(packets[1].seq, 0);
  EXPECT_EQ(packets[2].seq, 1);
  EXPECT_EQ(packets[0].payload.size(), kMaxPayload);
  EXPECT_EQ(packets[1].payload.size(), kMaxPayload);
  EXPECT_EQ(packets[2].payload.size(), 5u);
  EXPECT_EQ(packets[0].payload + packets[1].payload + packets[2].payload, payload);

  // Exactly two full chunks: a trailing empty packet.
  packets = Unframe(FramePacket(std::string(2 * kMaxPayload, 'c'), 0));
  ASSERT_EQ(packets.size(), 3u);
  EXPECT_TRUE(packets[2].payload.empty());
  EXPECT_EQ(packets[2].seq, 2);

  Writer w;
  w.Bytes(std::string(kMaxPayload + 1, 'd'));
  packets = Unframe(w.Packet(0));
  ASSERT_EQ(packets.size(), 2u);
  EXPECT_EQ(packets[1].payload, "d");
}

// ---- OK --------------------------------------------------------------------------------------

TEST(MysqlWireTest, ParseOkFromMariaDb) {
  // Recorded from MariaDB 10.11 with CLIENT_SESSION_TRACK: the login OK (no info at all).
  std::optional<OkPacket> ok = ParseOk(Bv(Unhex("00000002000000")), kModernCaps);
  ASSERT_TRUE(ok.has_value());
  EXPECT_EQ(ok->affected_rows, 0u);
  EXPECT_EQ(ok->status, kStatusAutocommit);
  EXPECT_EQ(ok->info, "");
  EXPECT_EQ(ok->session_state, "");

  // USE wp_db: SERVER_SESSION_STATE_CHANGED, empty info, schema tracker (type 1).
  ok = ParseOk(Bv(Unhex("00000002400000000801060577705f6462")), kModernCaps);
  ASSERT_TRUE(ok.has_value());
  EXPECT_EQ(ok->status, kStatusAutocommit | kStatusSessionStateChanged);
  EXPECT_EQ(ok->info, "");
  EXPECT_EQ(ok->session_state, Unhex("01060577705f6462"));

  // SET autocommit=0: system variable tracker (type 0).
  ok = ParseOk(Bv(Unhex("000000004000000011000f0a6175746f636f6d6d6974034f4646")), kModernCaps);
  ASSERT_TRUE(ok.has_value());
  EXPECT_EQ(ok->status, kStatusSessionStateChanged);
  EXPECT_EQ(ok->session_state, Unhex("000f0a6175746f636f6d6d6974034f4646"));

  // End of a result set with CLIENT_DEPRECATE_EOF: an OK with the 0xfe header.
  ok = ParseOk(Bv(Unhex("fe000000000000")), kModernCaps);
  ASSERT_TRUE(ok.has_value());
  EXPECT_EQ(ok->status, 0);
  EXPECT_FALSE(ParseOk(Bv(Unhex("fe000000000000")), kModernCaps & ~kDeprecateEof).has_value());
}

TEST(MysqlWireTest, ParseOkWithoutSessionTrackInfoIsRestOfPacket) {
  const std::string payload = Unhex(
                                  "00"
                                  "fc1027"
                                  "05"
                                  "0300"
                                  "0100") +
                              "Rows matched: 1  Changed: 1  Warnings: 0";
  std::optional<OkPacket> ok = ParseOk(Bv(payload), kProtocol41);
  ASSERT_TRUE(ok.has_value());
  EXPECT_EQ(ok->affected_rows, 10000u);
  EXPECT_EQ(ok->last_insert_id, 5u);
  EXPECT_EQ(ok->status, 3);
  EXPECT_EQ(ok->warnings, 1);
  EXPECT_EQ(ok->info, "Rows matched: 1  Changed: 1  Warnings: 0");
}

TEST(MysqlWireTest, ParseOkPre41) {
  // CLIENT_TRANSACTIONS without 4.1: status only, no warnings.
  std::optional<OkPacket> ok = ParseOk(Bv(Unhex("0001000200") + "hi"), kTransactions);
  ASSERT_TRUE(ok.has_value());
  EXPECT_EQ(ok->affected_rows, 1u);
  EXPECT_EQ(ok->status, kStatusAutocommit);
  EXPECT_EQ(ok->warnings, 0);
  EXPECT_EQ(ok->info, "hi");
  // Neither: just the two integers.
  ok = ParseOk(Bv(Unhex("000203") + "x"), 0);
  ASSERT_TRUE(ok.has_value());
  EXPECT_EQ(ok->affected_rows, 2u);
  EXPECT_EQ(ok->last_insert_id, 3u);
  EXPECT_EQ(ok->info, "x");
}

TEST(MysqlWireTest, OkRoundTrip) {
  OkPacket ok;
  ok.affected_rows = 0x1000000;
  ok.last_insert_id = 251;
  ok.status = kStatusInTrans | kStatusSessionStateChanged;
  ok.warnings = 2;
  ok.info = "info text";
  ok.session_state = Unhex("01060577705f6462");
  for (uint32_t caps : {kModernCaps, kModernCaps & ~kSessionTrack, uint32_t{kProtocol41},
                        uint32_t{kTransactions}}) {
    SCOPED_TRACE(caps);
    const std::string payload = OkPayload(ok, caps);
    std::optional<OkPacket> back = ParseOk(Bv(payload), caps);
    ASSERT_TRUE(back.has_value());
    EXPECT_EQ(back->affected_rows, ok.affected_rows);
    EXPECT_EQ(back->last_insert_id, ok.last_insert_id);
    EXPECT_EQ(back->status, ok.status);
    EXPECT_EQ(back->warnings, (caps & kProtocol41) ? ok.warnings : 0);
    EXPECT_EQ(back->info, ok.info);
    EXPECT_EQ(back->session_state, (caps & kSessionTrack) ? ok.session_state : "");
  }
  // Session state is written only when flagged.
  ok.status = kStatusAutocommit;
  std::optional<OkPacket> back = ParseOk(Bv(OkPayload(ok, kModernCaps)), kModernCaps);
  ASSERT_TRUE(back.has_value());
  EXPECT_EQ(back->session_state, "");
  EXPECT_EQ(OkPayload(OkPacket{}, kModernCaps), Unhex("0000000000000000"));
}

TEST(MysqlWireTest, ParseOkRejectsMalformed) {
  EXPECT_FALSE(ParseOk(ByteView{}, kModernCaps).has_value());
  EXPECT_FALSE(ParseOk(Bv(Unhex("ff0000")), kModernCaps).has_value());
  EXPECT_FALSE(ParseOk(Bv(Unhex("01000002000000")), kModernCaps).has_value());
  EXPECT_FALSE(ParseOk(Bv(Unhex("00fb0002000000")), kModernCaps).has_value());  // NULL rows
  // Info length runs past the end.
  EXPECT_FALSE(ParseOk(Bv(Unhex("0000000200000005616263")), kModernCaps).has_value());
  // Session state length runs past the end.
  EXPECT_FALSE(ParseOk(Bv(Unhex("000000024000000009010605")), kModernCaps).has_value());
  // Every truncation of a full OK either fails or parses; none reads past the end.
  OkPacket ok;
  ok.affected_rows = 70000;
  ok.status = kStatusSessionStateChanged;
  ok.info = "abc";
  ok.session_state = "state";
  const std::string full = OkPayload(ok, kModernCaps);
  for (size_t n = 0; n < full.size(); ++n) {
    std::optional<OkPacket> got = ParseOk(Bv(std::string_view(full).substr(0, n)), kModernCaps);
    if (got.has_value()) {
      EXPECT_TRUE(got->info.empty() || got->info == "abc");
    }
  }
  EXPECT_FALSE(ParseOk(Bv(full.substr(0, 6)), kModernCaps).has_value());
}

// ---- ERR -------------------------------------------------------------------------------------

TEST(MysqlWireTest, ParseErr) {
  const std::string payload = Unhex("ff1504") + "#28000Access denied for user 'x'";
  std::optional<ErrPacket> err = ParseErr(Bv(payload));
  ASSERT_TRUE(err.has_value());
  EXPECT_EQ(err->code, 1045);
  EXPECT_EQ(err->sql_state, "28000");
  EXPECT_EQ(err->message, "Access denied for user 'x'");

  // Pre-4.1 (or a handshake-time error): no state marker.
  err = ParseErr(Bv(Unhex("ff1004") + "Too many connections"));
  ASSERT_TRUE(err.has_value());
  EXPECT_EQ(err->code, 1040);
  EXPECT_EQ(err->sql_state, "HY000");
  EXPECT_EQ(err->message, "Too many connections");

  // A '#' without five characters after it is part of the message.
  err = ParseErr(Bv(Unhex("ff0100") + "#abc"));
  ASSERT_TRUE(err.has_value());
  EXPECT_EQ(err->sql_state, "HY000");
  EXPECT_EQ(err->message, "#abc");

  err = ParseErr(Bv(Unhex("ff0100")));
  ASSERT_TRUE(err.has_value());
  EXPECT_EQ(err->message, "");
  err = ParseErr(Bv(Unhex("ff0100") + "#42000"));
  ASSERT_TRUE(err.has_value());
  EXPECT_EQ(err->sql_state, "42000");
  EXPECT_EQ(err->message, "");

  EXPECT_FALSE(ParseErr(ByteView{}).has_value());
  EXPECT_FALSE(ParseErr(Bv(Unhex("ff"))).has_value());
  EXPECT_FALSE(ParseErr(Bv(Unhex("ff01"))).has_value());
  EXPECT_FALSE(ParseErr(Bv(Unhex("00010023"))).has_value());
}

TEST(MysqlWireTest, ErrRoundTrip) {
  const std::string payload = ErrPayload(1927, "70100", "Connection was killed");
  EXPECT_EQ(payload, Unhex("ff8707") + "#70100Connection was killed");
  std::optional<ErrPacket> err = ParseErr(Bv(payload));
  ASSERT_TRUE(err.has_value());
  EXPECT_EQ(err->code, 1927);
  EXPECT_EQ(err->sql_state, "70100");
  EXPECT_EQ(err->message, "Connection was killed");
  // A state that is not five characters cannot shift the message.
  err = ParseErr(Bv(ErrPayload(1105, "bad", "msg")));
  ASSERT_TRUE(err.has_value());
  EXPECT_EQ(err->sql_state, "HY000");
  EXPECT_EQ(err->message, "msg");
}

// ---- EOF -------------------------------------------------------------------------------------

TEST(MysqlWireTest, Eof) {
  const std::string eof = Unhex("fe00000220");  // warnings 0, status 0x2002
  EXPECT_TRUE(IsEof(Bv(eof)));
  EXPECT_EQ(EofStatus(Bv(eof)), 0x2002);
  EXPECT_TRUE(IsEof(Bv(Unhex("fe"))));  // pre-4.1 EOF
  EXPECT_FALSE(EofStatus(Bv(Unhex("fe"))).has_value());
  EXPECT_FALSE(EofStatus(Bv(Unhex("fe0000"))).has_value());
  EXPECT_TRUE(IsEof(Bv(Unhex("fe0000000000000000").substr(0, 8))));
  EXPECT_FALSE(IsEof(Bv(Unhex("fe000000000000000000"))));  // 9 bytes: a row or lenenc, not EOF
  EXPECT_FALSE(IsEof(Bv(Unhex("00000002000000"))));
  EXPECT_FALSE(IsEof(ByteView{}));
  EXPECT_FALSE(EofStatus(Bv(Unhex("0000000200"))).has_value());
}

// ---- the error table -------------------------------------------------------------------------

TEST(MysqlWireTest, ErrorForTable) {
  struct Row {
    ProxyError error;
    uint16_t code;
    std::string_view state;
  };
  const Row rows[] = {
      {ProxyError::kProtocolViolation, 1156, "08S01"}, {ProxyError::kAuthFailed, 1045, "28000"},
      {ProxyError::kTooManyClients, 1040, "08004"},    {ProxyError::kPoolTimeout, 1040, "08004"},
      {ProxyError::kServerUnavailable, 1158, "08S01"}, {ProxyError::kServerLost, 1158, "08S01"},
      {ProxyError::kLoginTimeout, 1159, "08S01"},      {ProxyError::kNotSupported, 1235, "42000"},
      {ProxyError::kShuttingDown, 1053, "08S01"},      {ProxyError::kKilled, 1927, "70100"},
      {ProxyError::kInternal, 1105, "HY000"},
  };
  for (const Row& row : rows) {
    MysqlError e = ErrorFor(row.error);
    EXPECT_EQ(e.code, row.code) << ProxyErrorName(row.error);
    EXPECT_EQ(std::string_view(e.sql_state), row.state) << ProxyErrorName(row.error);
  }
}

// ---- malformed input never crashes -----------------------------------------------------------

TEST(MysqlWireTest, RandomBytesNeverCrash) {
  std::mt19937 rng(20240229);
  std::uniform_int_distribution<int> byte(0, 255);
  std::uniform_int_distribution<int> len(0, 40);
  // Bias towards the interesting markers.
  const uint8_t markers[] = {0x00, 0xfb, 0xfc, 0xfd, 0xfe, 0xff, '#'};
  for (int iter = 0; iter < 20000; ++iter) {
    std::string bytes(static_cast<size_t>(len(rng)), '\0');
    for (char& c : bytes) {
      int b = byte(rng);
      c = static_cast<char>(b < 64 ? markers[b % sizeof(markers)] : b);
    }
    ByteView v = Bv(bytes);
    const uint32_t caps = static_cast<uint32_t>(rng());
    std::optional<OkPacket> ok = ParseOk(v, caps);
    if (ok.has_value()) {
      EXPECT_LE(ok->info.size() + ok->session_state.size(), bytes.size());
    }
    std::optional<ErrPacket> err = ParseErr(v);
    if (err.has_value()) {
      EXPECT_EQ(err->sql_state.size(), 5u);
    }
    IsEof(v);
    EofStatus(v);
    ReadHeader(v);
    Reader r(v);
    while (!r.done()) {
      size_t before = r.remaining();
      switch (rng() % 5) {
        case 0:
          r.LenencInt();
          break;
        case 1:
          r.LenencString();
          break;
        case 2:
          r.NulString();
          break;
        case 3:
          r.U24();
          break;
        default:
          r.U8();
          break;
      }
      ASSERT_LE(r.remaining(), before);
      if (r.remaining() == before) {
        r.U8();  // make progress past whatever stopped the read
      }
    }
  }
}

}  // namespace
}  // namespace wirepool::codec::mysql
