// The client side of a MySQL connection: commands while running. A client packet with sequence
// id 0 starts a command (its first payload byte says which); packets with another id belong to
// the current exchange: the continuation of a payload of 16 MiB or more, or the file of a LOAD
// DATA LOCAL INFILE the server asked for. Packets are streamed: only the few the codec must read
// (a COM_QUERY of up to 64 KiB, which may be a KILL; COM_PROCESS_KILL; COM_CHANGE_USER) are
// waited for whole.

#include <algorithm>
#include <cctype>
#include <charconv>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "codecs/mysql/classify.h"
#include "codecs/mysql/client_codec.h"
#include "codecs/mysql/sql_scan.h"
#include "codecs/mysql/sql_statements.h"
#include "codecs/mysql/wire.h"
#include "core/needle_scan.h"
#include "core/strings.h"

namespace wirepool::codec::mysql {
namespace {

// A COM_QUERY up to this size is read whole to see whether it holds a KILL; bigger ones are
// streamed unread (a KILL there reaches the server with a proxy id: see docs/operations.md).
constexpr size_t kMaxInspectedQuery = 64 << 10;
// With transaction pooling every query up to this size is read whole to be classified; bigger
// ones pin the client.
constexpr size_t kMaxClassifiedQuery = 1 << 20;
constexpr size_t kMaxKillTokens = kMaxClassifiedQuery;
constexpr size_t kProcessKillPayload = 5;  // command byte + u32 connection id

// Replication commands turn a connection into a stream the proxy cannot pool.
constexpr uint8_t kComBinlogDump = 0x12;
constexpr uint8_t kComRegisterSlave = 0x15;
constexpr uint8_t kComBinlogDumpGtid = 0x1e;

// Whether the word USE (any case) appears in the text: a query that may select a schema.
bool MentionsUse(std::string_view sql) {
  auto word = [](char c) {
    return std::isalnum(static_cast<unsigned char>(c)) != 0 || c == '_' || c == '$' ||
           static_cast<unsigned char>(c) >= 0x80;
  };
  for (size_t i = 0; i + 3 <= sql.size(); ++i) {
    if ((sql[i] | 0x20) == 'u' && (sql[i + 1] | 0x20) == 's' && (sql[i + 2] | 0x20) == 'e' &&
        (i == 0 || !word(sql[i - 1])) && (i + 3 == sql.size() || !word(sql[i + 3]))) {
      return true;
    }
  }
  return false;
}

// The cheap test every query pays (twice under transaction pooling: NeedsServer asks it too):
// only a query with "kill" in it (any case) is lexed.
constexpr std::string_view kKillStart[] = {"ki"};
constexpr core::NeedleScan<1> kKillScan(kKillStart);
static_assert(kKillScan.Finds("kill"));

bool MentionsKill(std::string_view sql) {
  for (size_t i = kKillScan.Next(sql, 0); i != std::string_view::npos && i + 4 <= sql.size();
       i = kKillScan.Next(sql, i + 1)) {
    if ((sql[i + 2] | 0x20) == 'l' && (sql[i + 3] | 0x20) == 'l') {
      return true;
    }
  }
  return false;
}

struct KillScan {
  enum What { kNone, kKill, kRefuse } what = kNone;
  sql::KillStatement kill;
};

// Whether a query is a KILL the proxy must map, read the way any server might read it: the
// client can switch NO_BACKSLASH_ESCAPES or ANSI_QUOTES on for itself, which moves where strings
// end. A KILL that is not alone in its query, in a form the proxy does not map, or that only some
// of those readings see, is refused: passed on, a server would read the proxy's ids as its own.
KillScan ScanForKill(std::string_view text) {
  KillScan scan;
  if (!MentionsKill(text)) {
    return scan;
  }
  int readings_with_kill = 0;
  constexpr sql::SqlMode kModes[] = {{}, {.no_backslash_escapes = true}, {.ansi_quotes = true}};
  for (const sql::SqlMode& mode : kModes) {
    auto tokens = sql::Tokenize(text, kMaxKillTokens, mode);
    if (!tokens) {
      scan.what = KillScan::kRefuse;
      return scan;
    }
    auto statements = sql::SplitStatements(*tokens);
    for (const auto& statement : statements) {
      if (!sql::IsKill(statement)) {
        continue;
      }
      sql::KillStatement kill = sql::ParseKill(statement);
      bool same = readings_with_kill == 0 || (kill.target == scan.kill.target &&
                                              kill.whole_connection == scan.kill.whole_connection);
      if (statements.size() != 1 || !kill.parsed || !same) {
        scan.what = KillScan::kRefuse;
        return scan;
      }
      scan.kill = std::move(kill);
      ++readings_with_kill;
    }
  }
  if (readings_with_kill == 0) {
    return scan;
  }
  scan.what = readings_with_kill == static_cast<int>(std::size(kModes)) ? KillScan::kKill
                                                                        : KillScan::kRefuse;
  return scan;
}

}  // namespace

Step ClientCodec::OnRunning(ByteView in) {
  if (forward_left_ > 0) {
    size_t n = std::min(forward_left_, in.size());
    forward_left_ -= n;
    return {discarding_ ? Verdict::kConsume : Verdict::kForward, n};
  }
  auto header = ReadHeader(in);
  if (!header) {
    return {Verdict::kNeedMore, kHeaderLen};
  }
  seq_ = static_cast<uint8_t>(header->seq + 1);
  awaiting_client_ = false;
  if (continued_) {
    return ForwardPacket(in, *header);  // the rest of a payload of 16 MiB or more
  }
  if (header->seq != 0 || (traffic_ == Traffic::kInfile && mid_request_)) {
    // Not a command: the file of a LOAD DATA LOCAL INFILE the server asked for, ended by an
    // empty packet (its sequence ids wrap through 0 after 256 packets). The server checks it;
    // the proxy only keeps the connection busy until then.
    traffic_ = Traffic::kInfile;
    return ForwardPacket(in, *header);
  }
  traffic_ = Traffic::kCommand;
  discarding_ = false;
  return OnCommand(in, *header);
}

Step ClientCodec::OnCommand(ByteView in, const PacketHeader& header) {
  if (header.length == 0) {
    // The server reads an empty command as COM_SLEEP and answers it with an error.
    sink_.OnRequestEnd(kComSleep);
    return ForwardPacket(in, header);
  }
  if (in.size() < kHeaderLen + 1) {
    return {Verdict::kNeedMore, kHeaderLen + 1};
  }
  uint8_t command = in[kHeaderLen];
  switch (command) {
    case kComQuit:
      state_ = State::kDone;
      sink_.OnTerminate();
      return {Verdict::kStop};
    case kComQuery:
      if (header.length <= MaxReadQuery()) {
        return OnQueryPacket(in, header);
      }
      if (header.length < kMaxPayload && Refused(TooLargeToClassify(header.length))) {
        return DiscardPacket(in, header);
      }
      ReportEffects(TooLargeToClassify(header.length));
      break;
    case kComStmtPrepare:
      if (options_.classify) {
        return OnStmtPrepare(in, header);
      }
      break;
    case kComStmtExecute:
    case kComStmtReset:
    case kComStmtFetch:
    case kComStmtSendLongData:
      if (options_.classify) {
        return OnStmtCommand(in, header, command);
      }
      if (command == kComStmtSendLongData) {
        return ForwardPacket(in, header);  // no response: not a request the server answers
      }
      break;
    case kComInitDb:
      if (options_.classify) {
        RequestEffects effects;
        effects.read_back.push_back("schema");
        ReportEffects(std::move(effects));
      }
      break;
    case kComResetConnection: {
      // The server forgets the session (its own state, and every pin's reason with it).
      ForgetStatements();
      RequestEffects reset;
      reset.unpins = ~PinSet{0};
      reset.reset_params = true;
      ReportEffects(std::move(reset));
      break;
    }
    case kComProcessKill:
      return OnProcessKill(in, header);
    case kComChangeUser:
      return OnChangeUser(in, header);
    case kComBinlogDump:
    case kComRegisterSlave:
    case kComBinlogDumpGtid:
      return Refuse(ProxyError::kNotSupported,
                    "replication connections are not supported by wirepool",
                    absl::UnimplementedError("replication command refused"));
    case kComStmtClose:
      if (options_.classify) {
        return OnStmtClose(in, header);
      }
      return ForwardPacket(in, header);  // no response: not a request the server answers
    default:
      break;
  }
  if (command != kComQuery && command != kComStmtPrepare && command != kComResetConnection &&
      command != kComInitDb) {
    ReportEffects({});
  }
  sink_.OnRequestEnd(header.length == kMaxPayload ? command | kTagMultiPacket : command);
  if (state_ == State::kDone) {
    return {Verdict::kStop};
  }
  return ForwardPacket(in, header);
}

RequestEffects ClientCodec::Classify(std::string_view text) const {
  if (!options_.classify) {
    return {};
  }
  if (MentionsUse(text)) {
    // USE changes the schema, which the proxy replays itself: read it back (the classifier
    // leaves USE alone, and a server without session tracking would not say).
    RequestEffects effects = PrefilterClears(text) ? RequestEffects{} : ClassifyAllModes(text);
    effects.read_back.push_back("schema");
    return effects;
  }
  if (PrefilterClears(text)) {
    return {};
  }
  return ClassifyAllModes(text);
}

RequestEffects ClientCodec::ClassifyAllModes(std::string_view text) {
  // Read every way the client's sql_mode could make the server read it: what hides in a string
  // under one reading is a statement under another.
  RequestEffects effects = ClassifySql(text);
  effects.Merge(ClassifySql(text, {.no_backslash_escapes = true}));
  effects.Merge(ClassifySql(text, {.ansi_quotes = true}));
  return effects;
}

RequestEffects ClientCodec::TooLargeToClassify(size_t length) {
  RequestEffects effects;
  effects.pins = PinBit(PinReason::kUnclassified);
  effects.statement = Cat("(a statement of ", length, " bytes, too large to classify)");
  return effects;
}

void ClientCodec::ReportEffects(RequestEffects effects) {
  if (!options_.classify) {
    return;
  }
  // FOUND_ROWS() belongs to the statement after SQL_CALC_FOUND_ROWS: that one keeps the pin, and
  // the request after it lets it go.
  const PinSet found_rows = PinBit(PinReason::kFoundRows);
  if (found_rows_pinned_ && (effects.pins & found_rows) == 0) {
    effects.unpins |= found_rows;
  }
  found_rows_pinned_ = (effects.pins & found_rows) != 0;
  effects.unpins |= unpins_next_ & ~effects.pins;
  unpins_next_ = 0;
  if (!effects.empty()) {
    sink_.OnRequestEffects(effects);
  }
}

bool ClientCodec::Refused(const RequestEffects& effects) {
  if (!options_.classify || (effects.pins & options_.refuse_pins) == 0) {
    return false;
  }
  // MySQL keeps a transaction going after a failed statement, so the codec answers by itself.
  sink_.OnRequestRefused(effects);
  SendError(ProxyError::kNotSupported, RefusalMessage(effects, options_.refuse_pins));
  return true;
}

Step ClientCodec::OnQueryPacket(ByteView in, const PacketHeader& header) {
  size_t total = kHeaderLen + header.length;
  if (in.size() < total) {
    return {Verdict::kNeedMore, total};
  }
  std::string_view sql(reinterpret_cast<const char*>(in.data()) + kHeaderLen + 1,
                       header.length - 1);
  KillScan scan = ScanForKill(sql);
  if (scan.what == KillScan::kNone) {
    RequestEffects effects = Classify(sql);
    SqlStatementOp op = options_.classify ? ReadSqlStatementOp(sql) : SqlStatementOp{};
    if (op.kind == SqlStatementOp::kPrepare) {
      // A PREPARE the proxy can replay (sql_statements.h) pins nothing, unless what it prepares
      // would change the session at each EXECUTE, unseen.
      RequestEffects inner = Classify(op.inner);
      if (inner.empty()) {
        effects = {};
      } else {
        op.kind = SqlStatementOp::kNone;
      }
    }
    if (Refused(effects)) {
      return {Verdict::kConsume, total};
    }
    ReportEffects(std::move(effects));
    if (op.kind != SqlStatementOp::kNone) {
      bool prepare = op.kind == SqlStatementOp::kPrepare;
      sink_.OnStatementMessage({prepare ? StatementNote::kPrepare : StatementNote::kClose, true,
                                SqlNoteKey(op.name), prepare ? std::string(sql) : ""});
    }
    sink_.OnRequestEnd(kComQuery);
    if (state_ == State::kDone) {
      return {Verdict::kStop};
    }
    return ForwardPacket(in, header);
  }
  if (scan.what == KillScan::kRefuse) {
    SendError(ProxyError::kNotSupported,
              "wirepool supports only KILL [QUERY | CONNECTION] <id> with one of its own "
              "connection ids, alone in its query");
    return {Verdict::kConsume, total};
  }
  const sql::KillStatement& kill = scan.kill;
  sink_.OnKill(kill.target, kill.whole_connection);
  if (state_ == State::kDone) {
    return {Verdict::kStop};
  }
  return {Verdict::kConsume, total};
}

size_t ClientCodec::MaxReadQuery() const {
  return options_.classify ? kMaxClassifiedQuery : kMaxInspectedQuery;
}

bool ClientCodec::IsKillRequest(ByteView in) const {
  auto header = ReadHeader(in);
  if (!header || header->length == 0 || header->length >= kMaxPayload ||
      in.size() < kHeaderLen + header->length) {
    return false;  // not whole yet: it goes the usual way
  }
  uint8_t command = in[kHeaderLen];
  if (command == kComProcessKill) {
    return true;
  }
  if (command != kComQuery || header->length > MaxReadQuery()) {
    return false;
  }
  std::string_view sql(reinterpret_cast<const char*>(in.data()) + kHeaderLen + 1,
                       header->length - 1);
  return ScanForKill(sql).what != KillScan::kNone;
}

Step ClientCodec::OnProcessKill(ByteView in, const PacketHeader& header) {
  if (header.length != kProcessKillPayload) {
    return Violation(Cat("malformed COM_PROCESS_KILL packet of ", header.length, " bytes"));
  }
  size_t total = kHeaderLen + header.length;
  if (in.size() < total) {
    return {Verdict::kNeedMore, total};
  }
  Reader r(in.subspan(kHeaderLen + 1, header.length - 1));
  uint32_t id = *r.U32();
  sink_.OnKill(std::to_string(id), /*whole_connection=*/true);
  if (state_ == State::kDone) {
    return {Verdict::kStop};
  }
  return {Verdict::kConsume, total};
}

// COM_CHANGE_USER is never passed to a server: the proxy checks the password itself, as at
// login, against the handshake's scramble (the one the client answers), and reports a new
// OnStartup; the proxy then gives the client a server of the new user's pool.
Step ClientCodec::OnChangeUser(ByteView in, const PacketHeader& header) {
  size_t total = kHeaderLen + header.length;
  if (header.length >= kMaxPayload || total > options_.max_startup_bytes) {
    return Violation(Cat("COM_CHANGE_USER packet of ", header.length,
                         " bytes is over the login limit of ", options_.max_startup_bytes,
                         " bytes"));
  }
  if (in.size() < total) {
    return {Verdict::kNeedMore, total};
  }
  constexpr const char* kMalformed = "malformed COM_CHANGE_USER packet";
  Reader r(in.subspan(kHeaderLen + 1, header.length - 1));
  auto user = r.NulString();
  std::optional<std::string_view> response;
  if (user && (client_caps_ & kSecureConnection)) {
    if (auto len = r.U8()) {
      response = r.Bytes(*len);
    }
  } else if (user) {
    response = r.NulString();
  }
  auto schema = response ? r.NulString() : std::nullopt;
  if (!schema) {
    return Violation(kMalformed);
  }
  uint8_t charset = charset_;
  if (r.remaining() >= 2) {
    uint16_t cs = *r.U16();
    if (cs > 0 && cs <= 0xff) {
      charset = static_cast<uint8_t>(cs);
    }
  }
  std::string_view plugin = kNativePassword;
  if ((client_caps_ & kPluginAuth) && !r.done()) {
    auto name = r.NulString();
    if (!name && (client_caps_ & kConnectAttrs)) {
      return Violation(kMalformed);
    }
    plugin = name ? *name : r.Rest();
  }
  // Connection attributes may follow; like the handshake's, they are not used.
  ForgetStatements();  // a new session: the server's statements are not the new user's
  user_ = std::string(*user);
  client_plugin_ = std::string(plugin);
  auth_response_ = std::string(*response);
  charset_ = charset;
  startup_bytes_ = total;
  state_ = State::kAwaitAuth;
  sink_.OnStartup(MakeStartup(*schema));
  if (state_ == State::kDone) {
    return {Verdict::kStop};
  }
  return {Verdict::kConsume, total};
}

Step ClientCodec::ForwardPacket(ByteView in, const PacketHeader& header) {
  bool starts_logical_packet = !continued_;
  continued_ = header.length == kMaxPayload;
  if (continued_) {
    mid_request_ = true;
  } else if (traffic_ == Traffic::kCommand) {
    mid_request_ = false;  // the command's last packet
  } else {
    // LOCAL INFILE data: an empty logical packet ends the file.
    mid_request_ = !(starts_logical_packet && header.length == 0);
  }
  size_t total = kHeaderLen + header.length;
  size_t n = std::min(total, in.size());
  forward_left_ = total - n;
  return {discarding_ ? Verdict::kConsume : Verdict::kForward, n};
}

Step ClientCodec::DiscardPacket(ByteView in, const PacketHeader& header) {
  discarding_ = true;
  return ForwardPacket(in, header);
}

void ClientCodec::AnswerKill(bool found, std::string_view target_key) {
  if (state_ != State::kRunning) {
    return;
  }
  if (found) {
    OkPacket ok;
    ok.status = server_status_ & ~kStatusMoreResultsExist;
    SendPacket(OkPayload(ok, client_caps_ & server_caps_));
    return;
  }
  SendPacket(ErrPayload(1094, "HY000", Cat("Unknown thread id: ", target_key)));
}

void ClientCodec::FollowServer(std::string_view response_state) {
  // "<status>" or "<status>:<next sequence id>" (mysql::ServerCodec::ResponseState).
  std::string_view status = response_state.substr(0, response_state.find(':'));
  uint16_t flags = 0;
  auto [end, ec] = std::from_chars(status.data(), status.data() + status.size(), flags);
  if (ec != std::errc() || end != status.data() + status.size()) {
    return;
  }
  server_status_ = flags;
  if (status.size() == response_state.size() || state_ != State::kRunning) {
    return;
  }
  std::string_view seq = response_state.substr(status.size() + 1);
  uint8_t next = 0;
  auto [seq_end, seq_ec] = std::from_chars(seq.data(), seq.data() + seq.size(), next);
  if (seq_ec == std::errc() && seq_end == seq.data() + seq.size()) {
    // The server's answer is under way: what the proxy adds continues its numbering.
    seq_ = next;
    awaiting_client_ = false;
  }
}

}  // namespace wirepool::codec::mysql
