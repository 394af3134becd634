#include "codecs/mysql/server_codec.h"

#include <algorithm>
#include <cctype>
#include <charconv>
#include <utility>

#include "absl/strings/match.h"
#include "codecs/mysql/classify.h"
#include "codecs/mysql/sql_statements.h"
#include "codecs/mysql/wire.h"
#include "core/strings.h"

// The login lives in server_login.cc, the response framing in server_response.cc; this file holds
// what both use: dispatch, the requests the codec sends itself, and the session state it tracks.

namespace wirepool::codec::mysql {
namespace {

// Session-state entry types (OK packets with SERVER_SESSION_STATE_CHANGED).
constexpr uint8_t kTrackSystemVariables = 0;
constexpr uint8_t kTrackSchema = 1;
constexpr uint8_t kTrackStateChange = 2;

bool EqualsIgnoreCase(std::string_view a, std::string_view b) {
  return absl::EqualsIgnoreCase(Av(a), Av(b));  // ASCII: no libc call per character
}

ByteView AsBytes(std::string_view s) {
  return ByteView(reinterpret_cast<const uint8_t*>(s.data()), s.size());
}

}  // namespace

ServerCodec::ServerCodec(const ServerLogin& login, ServerCodecSink& sink)
    : login_(login), sink_(sink), schema_(login.database) {}

ServerCodec::~ServerCodec() = default;

void ServerCodec::Start() {
  // The server speaks first; nothing to send.
  if (state_ == State::kIdle) {
    state_ = State::kHandshake;
  }
}

Step ServerCodec::OnBytes(ByteView in) {
  switch (state_) {
    case State::kIdle:
    case State::kHandshake:
    case State::kAuth:
      return OnLoginBytes(in);
    case State::kTlsPending:
      // Bytes ahead of the TLS handshake were not sent through it: never read them as the
      // server's.
      return LoginFailed(ErrorFor(ProxyError::kProtocolViolation),
                         "the server sent unencrypted data before the TLS handshake");
    case State::kRunning:
      return OnRunning(in);
    case State::kDone:
      break;
  }
  return {Verdict::kStop};
}

WireError ServerCodec::ServerError(ByteView packet, bool fatal) {
  WireError e;
  e.raw.assign(reinterpret_cast<const char*>(packet.data()), packet.size());
  e.fatal = fatal;
  if (auto err = ParseErr(packet.subspan(std::min(packet.size(), kHeaderLen)))) {
    e.code = Cat(err->code);
    e.message = std::move(err->message);
  } else {
    e.code = Cat(ErrorFor(ProxyError::kProtocolViolation).code);
    e.message = "malformed error packet from the server";
  }
  return e;
}

void ServerCodec::SetParameter(std::string_view name, std::string_view value) {
  auto it =
      std::find_if(params_.begin(), params_.end(), [&](const auto& p) { return p.first == name; });
  if (it != params_.end()) {
    it->second = std::string(value);
  } else {
    params_.emplace_back(std::string(name), std::string(value));
  }
}

void ServerCodec::SendPacket(std::string_view payload, uint8_t seq) {
  sink_.SendToServer(FramePacket(payload, seq));
}

bool ServerCodec::ApplyOk(const OkPacket& ok, bool report) {
  status_ = ok.status;
  if (report && ok.last_insert_id != 0 && (ok.status & kStatusInTrans) == 0 &&
      login_.transaction_pooling) {
    // After an autocommit INSERT, what LAST_INSERT_ID() gives the client next, on whichever
    // server it gets: replayed with SET @@SESSION.last_insert_id like any session variable.
    // (Inside a transaction the client keeps its server; see docs/pooling.md for the limits.)
    std::string id = Cat(ok.last_insert_id);
    NoteChanged("last_insert_id", id);
    sink_.OnParameterStatus("last_insert_id", id);
  }
  if (ok.status & kStatusDbDropped) {
    // The selected database was dropped: the session has none now, unless tracking says more.
    schema_known_ = false;
  }
  bool schema_reported = false;
  bool detailed = false;      // a variable or the schema was named
  bool state_change = false;  // the state-change tracker fired
  Reader r(AsBytes(ok.session_state));
  while (!r.done()) {
    auto type = r.U8();
    auto data = type ? r.LenencString() : std::nullopt;
    if (!data) {
      // Malformed tracking data: what it said about the schema cannot be trusted.
      schema_known_ = false;
      tracking_schema_ = false;
      return false;
    }
    Reader d(AsBytes(*data));
    if (*type == kTrackStateChange) {
      state_change = true;
    } else if (*type == kTrackSchema) {
      detailed = true;
      if (auto name = d.LenencString()) {
        schema_ = std::string(*name);
        schema_known_ = true;
        tracking_schema_ = true;
        schema_reported = true;
        if (report) {
          sink_.OnParameterStatus("schema", schema_);
        }
      }
    } else if (*type == kTrackSystemVariables) {
      detailed = true;
      auto name = d.LenencString();
      auto value = name ? d.LenencString() : std::nullopt;
      if (value) {
        SetParameter(*name, *value);
        if (report) {
          NoteChanged(*name, *value);
          sink_.OnParameterStatus(*name, *value);
        }
      }
    }
  }
  if (report && state_change && !detailed) {
    unexplained_change_ = true;
  }
  return schema_reported;
}

// ---- Requests of the codec's own ---------------------------------------------------------------

void ServerCodec::ExpectResponse(uint32_t tag) {
  uint32_t command = tag & 0xff;
  if (command == kComQuit || command == kComStmtClose || command == kComStmtSendLongData) {
    return;  // the server answers these with nothing
  }
  Pending& request = pending_.emplace_back();
  request.command = tag & 0xff;
  request.multi_packet = (tag & kTagMultiPacket) != 0;
  if (!tracking_schema_) {
    // The client may run USE, and nothing would tell.
    schema_known_ = false;
    if (command == kComQuery || command == kComInitDb) {
      ++unknown_schema_epoch_;  // prepared statements cannot select a schema
    }
  }
  if (command == kComStmtPrepare && next_prepare_) {
    // Keyed by the session as the statement finds it, as a later FindStatement sees it.
    pending_.back().statement_key = FullKey(next_prepare_->key);
    // A command pipelined behind the prepare (MariaDB's id -1) waits for it, not for another.
    Prepared& p = statements_[pending_.back().statement_key];
    if (p.status != ServerStatement::kReady) {
      p = Prepared{};
    }
    const std::string& id = next_prepare_->data;
    std::from_chars(id.data(), id.data() + id.size(), pending_.back().client_id);
  }
  next_prepare_.reset();
  if (command == kComQuery && next_sql_op_) {
    Pending& p = pending_.back();
    p.sql_op = next_sql_op_->kind == StatementNote::kPrepare ? 'P' : 'D';
    p.sql_name = std::string(*SqlNameOfNoteKey(next_sql_op_->key));
    p.sql_text = std::move(next_sql_op_->data);
  }
  next_sql_op_.reset();
}

ServerCodec::Pending& ServerCodec::SendInternal(uint8_t command, std::string_view arg,
                                                std::string schema, bool report_done) {
  Writer w;
  w.U8(command).Bytes(arg);
  SendPacket(w.payload(), 0);
  Pending& request = pending_.emplace_back();
  request.command = command;
  request.internal = true;
  request.schema = std::move(schema);
  request.report_done = report_done;
  return request;
}

void ServerCodec::SendInternalQuery(std::string_view sql) { SendInternal(kComQuery, sql, ""); }

void ServerCodec::SendReset() {
  // The server goes back to its defaults: what clients and the proxy's setup set is gone.
  changed_.clear();
  baseline_.clear();
  if (login_.reset_method == kResetChangeUser || reset_refused_) {
    SendChangeUser();
    return;
  }
  // COM_RESET_CONNECTION keeps the selected database, so what is known of it stays true.
  SendInternal(kComResetConnection, "", "");
  sql_prepared_.clear();
}

void ServerCodec::SendSetParameters(const ParamList& params) {
  // The schema is the only session parameter MySQL's protocol can set (COM_INIT_DB); the rest is
  // not this codec's to set, as ParametersToApply never asks for it. With nothing to send there is
  // no request and so no OnInternalDone, as with the PostgreSQL codec.
  const std::string* schema = nullptr;
  for (const auto& [name, value] : params) {
    if (EqualsIgnoreCase(name, "schema") && !value.empty()) {
      schema = &value;
    }
  }
  if (schema != nullptr) {
    SendInternal(kComInitDb, *schema, *schema);
  }
}

std::string ServerCodec::ResponseState() const {
  if (response_started_ && seq_known_) {
    return Cat(status_, ":", next_seq_);
  }
  return Cat(status_);
}

ParamList ServerCodec::ParametersToApply(const ParamList& wanted) const {
  const std::string* schema = nullptr;
  for (const auto& [name, value] : wanted) {
    if (EqualsIgnoreCase(name, "schema")) {
      schema = &value;
    }
  }
  // No database cannot be asked for: MySQL has no way to deselect one.
  if (schema == nullptr || schema->empty() || (schema_known_ && schema_ == *schema)) {
    return {};
  }
  return {{"schema", *schema}};
}

}  // namespace wirepool::codec::mysql

// ---- Session variables for transaction pooling -------------------------------------------------

namespace wirepool::codec::mysql {
namespace {

// A value as MySQL's SET takes it: numbers bare (a numeric variable refuses a string), anything
// else a string literal, or a hex literal when it holds bytes a literal would need escapes for.
std::string SqlValue(std::string_view v) {
  // -?digits(.digits)?: anything else (a date, an address) is a string.
  std::string_view n = v.starts_with('-') ? v.substr(1) : v;
  size_t dot = n.find('.');
  auto digits = [](std::string_view s) {
    return !s.empty() &&
           std::all_of(s.begin(), s.end(), [](char c) { return c >= '0' && c <= '9'; });
  };
  bool numeric = dot == std::string_view::npos
                     ? digits(n)
                     : digits(n.substr(0, dot)) && digits(n.substr(dot + 1));
  if (numeric) {
    return std::string(v);
  }
  bool plain = std::all_of(v.begin(), v.end(), [](char c) {
    return static_cast<unsigned char>(c) >= 0x20 && c != '\\' && c != '\'';
  });
  if (plain) {
    return Cat("'", v, "'");
  }
  std::string hex = "X'";
  for (unsigned char c : v) {
    hex += fmt::format("{:02x}", c);
  }
  return hex + "'";
}

template <typename List>
auto FindValue(List& list, std::string_view name) -> decltype(&list.front().second) {
  for (auto& [key, value] : list) {
    if (EqualsIgnoreCase(key, name)) {
      return &value;
    }
  }
  return nullptr;
}

bool PlainName(std::string_view name) {
  return !name.empty() && std::all_of(name.begin(), name.end(), [](char c) {
    return std::isalnum(static_cast<unsigned char>(c)) != 0 || c == '_';
  });
}

}  // namespace

void ServerCodec::NoteChanged(std::string_view name, std::string_view value) {
  for (auto& [key, v] : changed_) {
    if (EqualsIgnoreCase(key, name)) {
      v = std::string(value);
      return;
    }
  }
  changed_.emplace_back(std::string(name), std::string(value));
}

bool ServerCodec::ApplyParameters(const ParamList& wanted) {
  ParamList schema = ParametersToApply(wanted);
  std::string sets;
  auto add = [&sets](std::string_view name, std::string_view value) {
    sets += Cat(sets.empty() ? "SET " : ", ", "@@SESSION.", name, " = ", value);
  };
  for (const auto& param : wanted) {
    const std::string& name = param.first;
    const std::string& value = param.second;
    if (EqualsIgnoreCase(name, "schema") || !PlainName(name)) {
      continue;
    }
    auto now = std::find_if(changed_.begin(), changed_.end(),
                            [&](const auto& p) { return EqualsIgnoreCase(p.first, name); });
    const std::string* baseline = FindValue(baseline_, name);
    if (now != changed_.end() ? now->second == value : baseline != nullptr && *baseline == value) {
      continue;
    }
    add(name, SqlValue(value));
    NoteChanged(name, value);
  }
  for (auto it = changed_.begin(); it != changed_.end();) {
    bool keep = std::any_of(wanted.begin(), wanted.end(),
                            [&](const auto& p) { return EqualsIgnoreCase(p.first, it->first); });
    if (keep || !PlainName(it->first)) {
      ++it;
      continue;
    }
    if (const std::string* baseline = FindValue(baseline_, it->first); baseline != nullptr) {
      // Back to what the proxy's setup left, not to the server's default.
      if (*baseline != it->second) {
        add(it->first, SqlValue(*baseline));
      }
      it = changed_.erase(it);
      continue;
    }
    // DEFAULT is the server's global value; the character set the connection logged in with is
    // what the session had (MySQL takes a character set or collation by its number).
    bool charset = EqualsIgnoreCase(it->first, "character_set_client") ||
                   EqualsIgnoreCase(it->first, "character_set_connection") ||
                   EqualsIgnoreCase(it->first, "character_set_results") ||
                   EqualsIgnoreCase(it->first, "collation_connection");
    // last_insert_id has no DEFAULT; a fresh session's is 0.
    bool insert_id = EqualsIgnoreCase(it->first, "last_insert_id");
    add(it->first, charset ? Cat(charset_) : insert_id ? std::string("0") : std::string("DEFAULT"));
    it = changed_.erase(it);
  }
  // SQL-level statements: this server holds exactly the client's (sql_statements.h), prepared
  // after the schema and sql_mode are the client's, as the client prepared them.
  std::vector<std::pair<std::string, std::string>> deallocate, prepare;  // name, query
  for (const auto& [param, text] : wanted) {
    auto name = SqlStatementOfParam(param);
    if (!name || text.empty()) {
      continue;
    }
    auto held = sql_prepared_.find(Av(*name));
    if (held == sql_prepared_.end() || held->second != text) {
      prepare.emplace_back(std::string(*name), text);
    }
  }
  for (const auto& held : sql_prepared_) {
    bool wanted_here = std::any_of(wanted.begin(), wanted.end(), [&held](const auto& p) {
      return SqlStatementOfParam(p.first) == std::optional<std::string_view>(held.first) &&
             p.second == held.second;
    });
    if (!wanted_here) {
      deallocate.emplace_back(held.first, "");
    }
  }
  size_t requests = (sets.empty() ? 0 : 1) + schema.size() + deallocate.size() + prepare.size();
  if (requests == 0) {
    return false;
  }
  auto last = [&requests] { return --requests == 0; };
  if (!sets.empty()) {
    SendInternal(kComQuery, sets, "", last());
  }
  if (!schema.empty()) {
    SendInternal(kComInitDb, schema.front().second, schema.front().second, last());
  }
  for (const auto& [name, unused] : deallocate) {
    sql_prepared_.erase(name);  // gone whether or not the server still had it
    Pending& p =
        SendInternal(kComQuery, Cat("DEALLOCATE PREPARE ", QuoteIdentifier(name)), "", last());
    p.tolerant = true;
  }
  for (const auto& [name, query] : prepare) {
    sql_prepared_.erase(name);
    Pending& p = SendInternal(kComQuery, query, "", last());
    p.sql_op = 'P';
    p.sql_name = name;
    p.sql_text = query;
    p.tolerant = true;
  }
  return true;
}

void ServerCodec::ApplySqlOp(const Pending& request, bool report) {
  if (request.sql_op == 'P') {
    sql_prepared_[request.sql_name] = request.sql_text;
  } else {
    sql_prepared_.erase(request.sql_name);
  }
  if (report) {
    sink_.OnParameterStatus(SqlStatementParam(request.sql_name),
                            request.sql_op == 'P' ? request.sql_text : "");
  }
}

void ServerCodec::ForgetSqlStatements(bool report) {
  if (report) {
    for (const auto& [name, unused] : sql_prepared_) {
      sink_.OnParameterStatus(SqlStatementParam(name), "");
    }
  }
  sql_prepared_.clear();
}

bool ServerCodec::SendReadBack(const std::vector<std::string>& names) {
  reading_baseline_ = false;
  std::string sql;
  std::vector<std::string> asked;
  for (const std::string& name : names) {
    if (!PlainName(name)) {
      continue;
    }
    // The schema is the session's current database, not a variable.
    sql += Cat(sql.empty() ? "SELECT " : ", ", name == "schema" ? "DATABASE()" : "@@SESSION.",
               name == "schema" ? "" : name);
    asked.push_back(name);
  }
  if (asked.empty()) {
    return false;
  }
  read_back_ = std::move(asked);
  SendInternal(kComQuery, sql, "");
  return true;
}

void ServerCodec::OnReadBackRow(ByteView payload) {
  Reader r(payload);
  for (const std::string& name : read_back_) {
    if (r.remaining() > 0 && payload[payload.size() - r.remaining()] == 0xfb) {
      r.U8();  // NULL
      continue;
    }
    auto value = r.LenencString();
    if (!value) {
      return;
    }
    if (name == "schema") {
      schema_ = std::string(*value);
      schema_known_ = true;
    } else if (reading_baseline_) {
      if (std::string* baseline = FindValue(baseline_, name); baseline != nullptr) {
        *baseline = std::string(*value);
      } else {
        baseline_.emplace_back(name, std::string(*value));
      }
      SetParameter(name, *value);
    } else {
      NoteChanged(name, *value);
      SetParameter(name, *value);
    }
    sink_.OnParameterStatus(name, *value);
  }
}

bool ServerCodec::SendBaseline(const std::vector<std::string>& init_sql) {
  // What ApplyParameters set for the proxy (the user's startup parameters) is the baseline now,
  // read back with what init_sql may have set, so that the values are as the server spells them.
  std::vector<std::string> names;
  for (const auto& [name, value] : changed_) {
    names.push_back(name);
  }
  baseline_ = std::move(changed_);
  changed_.clear();
  for (const std::string& sql : init_sql) {
    for (std::string& name : ClassifySql(sql).read_back) {
      if (name != "schema" && std::find(names.begin(), names.end(), name) == names.end()) {
        names.push_back(std::move(name));
      }
    }
  }
  // Under transaction pooling the server says when a request changes the session in a way the
  // classifier may have missed (inside a stored procedure, say): the state-change tracker.
  bool tracker = login_.transaction_pooling && (caps() & kSessionTrack) != 0;
  if (tracker) {
    // A server without the tracker (older than MySQL 5.7 or MariaDB 10.2) refuses it; it then
    // simply never reports.
    SendInternal(kComQuery, "SET SESSION session_track_state_change = ON", "",
                 /*report_done=*/false)
        .tolerant = true;
  }
  bool sent = SendReadBack(names);
  reading_baseline_ = sent;
  if (tracker && !sent) {
    pending_.back().report_done = true;  // the SET alone is the request
  }
  return sent || tracker;
}

std::vector<std::string> ServerCodec::BaselineNames() const {
  std::vector<std::string> names;
  for (const auto& [name, value] : baseline_) {
    names.push_back(name);
  }
  return names;
}

}  // namespace wirepool::codec::mysql
