#include "codecs/postgres/server_codec.h"
#include "core/strings.h"

#include <algorithm>
#include <cctype>
#include <iterator>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "codecs/postgres/classify.h"
#include "codecs/postgres/wire.h"
#include "core/crypto.h"

namespace wirepool::codec::postgres {
namespace {

// Messages the codec must see whole; anything bigger than this is not a sane reply to login.
constexpr size_t kMaxLoginMessage = 1 << 20;
constexpr size_t kMaxInspectedMessage = 1 << 20;

WireError ToWireError(ByteView whole_message) {
  WireError e;
  e.raw.assign(reinterpret_cast<const char*>(whole_message.data()), whole_message.size());
  if (auto f = ParseErrorFields(whole_message.subspan(kHeaderLen))) {
    e.code = f->code;
    e.message = f->message;
    e.fatal = f->severity == "FATAL" || f->severity == "PANIC";
  }
  return e;
}

// ASCII (absl's table), not libc's tolower: parameter names are ASCII, and this runs for every
// parameter of every client on every attach, where a libc call per character showed up.
bool EqualsIgnoreCase(std::string_view a, std::string_view b) {
  return absl::EqualsIgnoreCase(Av(a), Av(b));
}

std::string ToLower(std::string_view s) { return absl::AsciiStrToLower(Av(s)); }

ParamList::iterator FindParam(ParamList& list, std::string_view name) {
  return std::find_if(list.begin(), list.end(),
                      [&](const auto& p) { return EqualsIgnoreCase(p.first, name); });
}

ParamList::const_iterator FindParam(const ParamList& list, std::string_view name) {
  return std::find_if(list.begin(), list.end(),
                      [&](const auto& p) { return EqualsIgnoreCase(p.first, name); });
}

}  // namespace

ServerCodec::ServerCodec(const ServerLogin& login, ServerCodecSink& sink)
    : login_(login), sink_(sink) {}

void ServerCodec::Start() {
  if (login_.tls) {
    Writer w;
    w.BeginUntyped().U32(kSslRequestCode);
    state_ = State::kTlsAnswer;
    sink_.SendToServer(w.Take());
    return;
  }
  SendStartup();
}

void ServerCodec::ContinueLogin(bool) {
  if (state_ == State::kTlsPending) {
    SendStartup();
  }
}

void ServerCodec::SendStartup() {
  Writer w;
  w.BeginUntyped().U32(kProtocol30);
  w.CString("user").CString(login_.user);
  w.CString("database").CString(login_.database);
  for (const auto& [name, value] : login_.params) {
    w.CString(name).CString(value);
  }
  w.U8(0);
  applied_ = login_.params;
  baseline_ = login_.params;
  ++param_gen_;
  state_ = State::kLogin;
  sink_.SendToServer(w.Take());
}

Step ServerCodec::OnBytes(ByteView in) {
  if (state_ == State::kRunning) {
    return OnRunning(in);
  }
  if (state_ == State::kTlsAnswer) {
    if (in[0] != 'S' && in[0] != 'N') {
      // 'E' is a server from before SSLRequest existed: it has no TLS to give.
      return LoginFailed("server answered the SSL request with neither S nor N");
    }
    if (in[0] == 'S' && in.size() > 1) {
      // Bytes behind the go-ahead came before the handshake, in plaintext: a man in the middle
      // could have put them there (CVE-2021-23222).
      return LoginFailed("server sent unencrypted data after its SSL response");
    }
    state_ = State::kTlsPending;
    tls_accepted_ = in[0] == 'S';
    sink_.OnTlsOffer(tls_accepted_);
    return {Verdict::kConsume, 1};
  }
  if (state_ == State::kTlsPending) {
    return LoginFailed(tls_accepted_ ? "server sent unencrypted data after its SSL response"
                                     : "server spoke before the startup packet");
  }
  if (state_ != State::kLogin) {
    return {Verdict::kStop};
  }
  if (in.size() < kHeaderLen) {
    return {Verdict::kNeedMore, kHeaderLen};
  }
  uint32_t len = ReadU32(in.data() + 1);
  if (len < 4 || len > kMaxLoginMessage) {
    return LoginFailed(Cat("server sent a message of invalid length ", len));
  }
  if (in.size() < len + 1) {
    return {Verdict::kNeedMore, len + 1};
  }
  Step step = OnLogin(in.first(len + 1));
  if (step.verdict == Verdict::kConsume) {
    step.bytes = len + 1;
  }
  return step;
}

Step ServerCodec::OnLogin(ByteView message) {
  ByteView body = message.subspan(kHeaderLen);
  Reader r(body);
  switch (message[0]) {
    case 'R':
      return OnAuthRequest(body);
    case 'E': {
      state_ = State::kDone;
      sink_.OnLoginFailed(ToWireError(message));
      return {Verdict::kStop};
    }
    case 'S': {
      auto name = r.CString();
      auto value = r.CString();
      if (!name || !value) {
        return LoginFailed("malformed ParameterStatus");
      }
      SetParameter(*name, *value);
      return {Verdict::kConsume};
    }
    case 'K': {
      auto key = r.Bytes(8);
      if (!key) {
        return LoginFailed("malformed BackendKeyData");
      }
      cancel_key_ = std::string(*key);
      return {Verdict::kConsume};
    }
    case 'Z':
      state_ = State::kRunning;
      sink_.OnLoginComplete();
      return {Verdict::kConsume};
    case 'N':
    case 'v':
      return {Verdict::kConsume};
    default:
      return LoginFailed(
          Cat("unexpected message type ", static_cast<int>(message[0]), " during login"));
  }
}

Step ServerCodec::OnAuthRequest(ByteView body) {
  Reader r(body);
  auto code = r.U32();
  if (!code) {
    return LoginFailed("malformed authentication request");
  }
  Writer w;
  if ((*code == 3 || *code == 5) && login_.password.empty() && !login_.scram_client_key.empty()) {
    return LoginFailed(Cat("the server asks for ", *code == 3 ? "a cleartext password" : "md5",
                           ", but the user's password is a SCRAM verifier, which only logs in "
                           "with SCRAM-SHA-256: set backend_password"));
  }
  switch (*code) {
    case 0:  // AuthenticationOk
      if (scram_ != nullptr) {
        // The server must have proved itself in SASLFinal before saying Ok.
        return LoginFailed("server skipped SCRAM server verification");
      }
      return {Verdict::kConsume};
    case 3:  // cleartext
      sink_.SendToServer(w.Begin('p').CString(login_.password).Take());
      return {Verdict::kConsume};
    case 5: {  // md5
      auto salt = r.Bytes(4);
      if (!salt) {
        return LoginFailed("malformed md5 request");
      }
      std::string inner = crypto::Md5Hex(Cat(login_.password, login_.user));
      std::string hashed = Cat("md5", crypto::Md5Hex(Cat(inner, *salt)));
      sink_.SendToServer(w.Begin('p').CString(hashed).Take());
      return {Verdict::kConsume};
    }
    case 10: {  // SASL
      bool offered = false;
      while (auto mech = r.CString()) {
        if (mech->empty()) {
          break;
        }
        offered = offered || *mech == "SCRAM-SHA-256";
      }
      if (!offered) {
        return LoginFailed("server offers no SASL mechanism wirepool supports");
      }
      if (login_.password.empty() && !login_.scram_client_key.empty()) {
        scram_ =
            ScramClient::WithKeys(login_.scram_client_key, login_.scram_server_key, login_.random);
      } else {
        scram_ = std::make_unique<ScramClient>(login_.password, login_.random);
      }
      std::string first = scram_->ClientFirst();
      w.Begin('p').CString("SCRAM-SHA-256").U32(static_cast<uint32_t>(first.size())).Bytes(first);
      sink_.SendToServer(w.Take());
      return {Verdict::kConsume};
    }
    case 11: {  // SASLContinue
      if (scram_ == nullptr) {
        return LoginFailed("unexpected SASLContinue");
      }
      auto reply = scram_->OnServerFirst(r.Rest());
      if (!reply.ok()) {
        return LoginFailed(Cat("SCRAM: ", reply.status().message()));
      }
      sink_.SendToServer(w.Begin('p').Bytes(*reply).Take());
      return {Verdict::kConsume};
    }
    case 12: {  // SASLFinal
      if (scram_ == nullptr) {
        return LoginFailed("unexpected SASLFinal");
      }
      absl::Status st = scram_->OnServerFinal(r.Rest());
      if (!st.ok()) {
        return LoginFailed(Cat("SCRAM: ", st.message()));
      }
      scram_.reset();
      return {Verdict::kConsume};
    }
    default:
      return LoginFailed(Cat("server asks for authentication method ", *code,
                             ", which wirepool does not support"));
  }
}

Step ServerCodec::LoginFailed(std::string_view message) {
  state_ = State::kDone;
  WireError e;
  e.code = std::string(SqlState(ProxyError::kServerUnavailable));
  e.message = Cat("wirepool could not log in to the server: ", message);
  e.raw = ErrorResponse("FATAL", e.code, e.message);
  e.fatal = true;
  sink_.OnLoginFailed(e);
  return {Verdict::kStop};
}

Step ServerCodec::OnRunning(ByteView in) {
  if (forward_left_ > 0) {
    size_t n = std::min(forward_left_, in.size());
    forward_left_ -= n;
    return {consume_rest_ ? Verdict::kConsume : Verdict::kForward, n};
  }
  if (in.size() < kHeaderLen) {
    return {Verdict::kNeedMore, kHeaderLen};
  }
  uint8_t type = in[0];
  uint32_t len = ReadU32(in.data() + 1);
  if (len < 4) {
    state_ = State::kDone;
    sink_.OnProtocolError(absl::DataLossError(Cat("server sent message length ", len)));
    return {Verdict::kStop};
  }
  size_t total = size_t{len} + 1;
  // A client's Query that says what it does to SQL-level statements (sql_statements.h); one the
  // codec stands in for shows the client only its errors, reports and ReadyForQuery.
  SqlRequest* sql =
      internal_pending_ == 0 && !sql_requests_.empty() ? CurrentSqlRequest() : nullptr;
  const bool drop =
      internal_pending_ > 0 || (sql != nullptr && sql->ops.intercepted && type != 'E' &&
                                type != 'S' && type != 'A' && type != 'Z');
  if (type == 'E' && internal_pending_ == 0 && !request_failed_) {
    request_failed_ = true;
    sink_.OnRequestFailed();
  }
  if ((type == '1' || type == '3') && internal_pending_ == 0 && !notes_.empty() && len == 4) {
    bool forward = OnStatementAnswer(type == '1' ? StatementNote::kPrepare : StatementNote::kClose);
    return {forward && !drop ? Verdict::kForward : Verdict::kConsume, total};
  }
  if (type == 'C' && internal_pending_ == 0) {
    if (sql != nullptr) {
      ++sql->completed;  // one more of its statements ran
    }
    if ((!prepared_.empty() || !sql_statements_.empty()) && total <= 64) {
      if (in.size() < total) {
        if (sql != nullptr) {
          --sql->completed;  // counted again when the message is whole
        }
        return {Verdict::kNeedMore, total};
      }
      std::string_view tag(reinterpret_cast<const char*>(in.data()) + kHeaderLen,
                           total - kHeaderLen);
      if (tag.starts_with("DISCARD ALL") || tag.starts_with("DEALLOCATE ALL")) {
        // A client emptied the server's statements, every client's.
        prepared_.clear();
        ForgetSqlStatements();
      }
    }
  }
  bool inspect = type == 'Z' || type == 'S' || (type == 'E' && internal_pending_ > 0) ||
                 (type == 'D' && !read_back_.empty());
  if (inspect && total <= kMaxInspectedMessage) {
    if (in.size() < total) {
      return {Verdict::kNeedMore, total};
    }
    ByteView message = in.first(total);
    Reader r(message.subspan(kHeaderLen));
    if (type == 'S') {
      auto name = r.CString();
      auto value = r.CString();
      if (name && value) {
        if (internal_pending_ == 0) {
          // A change the client made itself: the next client may not want it.
          NoteChanged(*name, *value);
        }
        SetParameter(*name, *value);
        if (internal_pending_ == 0) {
          sink_.OnParameterStatus(*name, *value);
        }
      }
    } else if (type == 'E') {
      internal_request_error_ = std::make_unique<WireError>(ToWireError(message));
    } else if (type == 'D') {
      OnReadBackRow(message.subspan(kHeaderLen));
    } else if (type == 'Z') {
      request_failed_ = false;
      auto status = r.U8();
      TxState tx = TxState::kIdle;
      if (status == 'T') {
        tx = TxState::kInTransaction;
      } else if (status == 'E') {
        tx = TxState::kFailed;
      } else if (status != 'I') {
        state_ = State::kDone;
        sink_.OnProtocolError(absl::DataLossError("server sent an invalid ReadyForQuery status"));
        return {Verdict::kStop};
      }
      tx_ = tx;
      if (internal_pending_ > 0) {
        FinishInternal();
        if (--internal_pending_ == 0) {
          read_back_.clear();
          auto error = std::move(internal_error_);
          sink_.OnInternalDone(error.get());
        }
        return {Verdict::kConsume, total};
      }
      // The request is over: notes of messages an error made the server skip go with it.
      while (!notes_.empty()) {
        bool sync = notes_.front().kind == StatementNote::kSync;
        bool ops = sync && !notes_.front().key.empty();
        notes_.pop_front();
        if (ops) {
          FinishSqlRequest();
        }
        if (sync) {
          break;
        }
      }
      sink_.OnReadyForQuery(tx);
      return {Verdict::kForward, total};
    }
    return {drop ? Verdict::kConsume : Verdict::kForward, total};
  }
  size_t n = std::min(total, in.size());
  forward_left_ = total - n;
  consume_rest_ = drop;
  if (type == 'D' && n == total && read_back_.empty()) {
    n += DataRowRun(in.subspan(total));
  }
  return {drop ? Verdict::kConsume : Verdict::kForward, n};
}

size_t ServerCodec::DataRowRun(ByteView in) {
  // The rows that follow a whole DataRow the codec did not need to read go with it in one step
  // (and one write to the client); anything else, a row cut short included, goes the one-message
  // way. The header is read in place: this loop runs per row.
  size_t at = 0;
  while (in.size() - at >= kHeaderLen && in[at] == 'D') {
    const uint32_t len = ReadU32(in.data() + at + 1);
    if (len < 4 || in.size() - at < size_t{len} + 1) {
      break;
    }
    at += size_t{len} + 1;
  }
  return at;
}

void ServerCodec::SetParameter(std::string_view name, std::string_view value) {
  ++param_gen_;
  auto it = FindParam(params_, name);
  if (it != params_.end()) {
    it->second = std::string(value);
  } else {
    params_.emplace_back(std::string(name), std::string(value));
  }
}

void ServerCodec::SendInternal(std::string_view sql) { SendInternal(sql, Internal{}); }

void ServerCodec::SendInternal(std::string_view sql, Internal request) {
  ++internal_pending_;
  internal_.push_back(std::move(request));
  sink_.SendToServer(QueryMessage(sql));
}

void ServerCodec::FinishInternal() {
  std::unique_ptr<WireError> error = std::move(internal_request_error_);
  if (internal_.empty()) {
    return;
  }
  Internal request = std::move(internal_.front());
  internal_.pop_front();
  switch (request.kind) {
    case Internal::kPlain:
      if (error != nullptr && internal_error_ == nullptr) {
        internal_error_ = std::move(error);
      }
      break;
    case Internal::kPrepare:
      // A client's statement that no longer prepares (a table gone since) is simply missing
      // here, as it would fail at EXECUTE: the client is not failed for it.
      if (error == nullptr) {
        sql_statements_[request.name] = std::move(request.text);
      }
      break;
    case Internal::kDeallocate:
      // It fails only if the statement is not there: gone either way.
      sql_statements_.erase(request.name);
      break;
  }
}

bool ServerCodec::Quiet() const {
  return state_ == State::kRunning && tx_ == TxState::kIdle && internal_pending_ == 0 &&
         notes_.empty() && forward_left_ == 0;
}

bool ServerCodec::HasStatement(std::string_view key) const {
  // A Parse on its way in the same request counts as done: a Bind pipelined behind it must not
  // prepare the statement a second time. One in an earlier request that is not answered yet may
  // still be skipped (an error before it), so it does not count: the statement is prepared again
  // (Close + Parse, which is right either way).
  bool later_request = false;
  for (auto it = notes_.rbegin(); it != notes_.rend(); ++it) {
    if (it->kind == StatementNote::kSync) {
      later_request = true;
    } else if (it->key == key) {
      return it->kind == StatementNote::kPrepare && !later_request;
    }
  }
  auto it = prepared_.find(Av(key));
  if (it == prepared_.end()) {
    return false;
  }
  it->second = tick_;  // used by the request under way (max_prepared_statements)
  return true;
}

bool ServerCodec::OnStatementAnswer(StatementNote::Kind kind) {
  for (auto it = notes_.begin(); it != notes_.end() && it->kind != StatementNote::kSync; ++it) {
    if (it->kind != kind) {
      continue;
    }
    StatementNote note = std::move(*it);
    notes_.erase(it);
    if (auto placeholder = PlaceholderOfKey(note.key)) {
      if (kind == StatementNote::kPrepare) {
        sql_statements_[std::string(*placeholder)] = std::string(kPlaceholderText);
      }
    } else if (!note.key.empty()) {
      if (kind == StatementNote::kPrepare) {
        // Last used by the request that prepared it: the one being answered, whose tick_ was
        // this less the Syncs still to be answered.
        uint64_t syncs = std::count_if(notes_.begin(), notes_.end(), [](const StatementNote& n) {
          return n.kind == StatementNote::kSync;
        });
        uint64_t& used = prepared_[note.key];
        used = std::max(used, tick_ - std::min(tick_, syncs));
      } else {
        prepared_.erase(note.key);
      }
    }
    return note.forward;
  }
  return true;  // not one of the notes (a session-pooled client's): the client's own answer
}

void ServerCodec::SendReset() {
  prepared_.clear();
  notes_.clear();
  sql_statements_.clear();
  sql_requests_.clear();
  applied_ = login_.params;
  baseline_ = login_.params;
  ++param_gen_;
  if (tx_ != TxState::kIdle) {
    // DISCARD ALL cannot run inside a transaction block; a separate message ends it first.
    SendInternal("ROLLBACK");
  }
  SendInternal("DISCARD ALL");
  tx_ = TxState::kIdle;
}

void ServerCodec::SendSetParameters(const ParamList& params) {
  if (params.empty()) {
    return;
  }
  std::string sql;
  ++param_gen_;
  for (const auto& [name, value] : params) {
    absl::StrAppend(&sql, "SET ", QuoteIdent(ToLower(name)), " TO ", QuoteLiteral(value), ";");
    auto it = FindParam(applied_, name);
    if (it != applied_.end()) {
      it->second = value;
    } else {
      applied_.emplace_back(name, value);
    }
  }
  SendInternal(sql);
}

ParamList ServerCodec::ParametersToApply(const ParamList& wanted) const {
  ParamList out;
  for (const auto& [name, value] : wanted) {
    if (SqlStatementOfParam(name)) {
      continue;  // ApplyParameters' (sql_statements.h)
    }
    auto applied = FindParam(applied_, name);
    if (applied != applied_.end() && applied->second == value) {
      continue;
    }
    auto reported = FindParam(params_, name);
    if (reported != params_.end() && reported->second == value) {
      continue;
    }
    out.emplace_back(name, value);
  }
  return out;
}

}  // namespace wirepool::codec::postgres

// ---- Session parameters for transaction pooling ------------------------------------------------

namespace wirepool::codec::postgres {
namespace {

// Reported by the server but never settable: a client's recorded copy is not replayed.
bool ReadOnly(std::string_view name) {
  for (std::string_view n : {"server_version", "server_encoding", "integer_datetimes",
                             "is_superuser", "in_hot_standby"}) {
    if (EqualsIgnoreCase(name, n)) {
      return true;
    }
  }
  return false;
}

}  // namespace

void ServerCodec::NoteChanged(std::string_view name, std::string_view value) {
  ++param_gen_;
  auto it = FindParam(applied_, name);
  if (it != applied_.end()) {
    it->second = std::string(value);
  } else {
    applied_.emplace_back(std::string(name), std::string(value));
  }
}

bool ServerCodec::ApplyParameters(const ParamList& wanted) {
  if (apply_gen_ == param_gen_ && wanted == apply_wanted_) {
    return ApplySqlStatements(wanted);
  }
  std::string sets;
  for (const auto& [name, value] : wanted) {
    if (ReadOnly(name) || SqlStatementOfParam(name)) {
      continue;
    }
    auto applied = FindParam(applied_, name);
    auto reported = FindParam(params_, name);
    const std::string* now = applied != applied_.end()   ? &applied->second
                             : reported != params_.end() ? &reported->second
                                                         : nullptr;
    if (now != nullptr && *now == value) {
      continue;
    }
    sets += Cat(sets.empty() ? "SELECT " : ", ", "pg_catalog.set_config(",
                QuoteLiteral(ToLower(name)), ", ", QuoteLiteral(value), ", false)");
    NoteChanged(name, value);
  }
  std::string resets;
  for (auto it = applied_.begin(); it != applied_.end();) {
    if (ReadOnly(it->first)) {
      // Reported by the server (SET ROLE, a promotion), never set by anyone: nothing to reset.
      it = applied_.erase(it);
      ++param_gen_;
      continue;
    }
    bool keep = FindParam(wanted, it->first) != wanted.end();
    auto baseline = FindParam(baseline_, it->first);
    if (keep || (baseline != baseline_.end() && baseline->second == it->second)) {
      ++it;
      continue;
    }
    auto login = FindParam(login_.params, it->first);
    if (baseline != baseline_.end() &&
        (login == login_.params.end() || login->second != baseline->second)) {
      // init_sql set it: RESET would go past that, to the server's default.
      sets +=
          Cat(sets.empty() ? "SELECT " : ", ", "pg_catalog.set_config(",
              QuoteLiteral(ToLower(it->first)), ", ", QuoteLiteral(baseline->second), ", false)");
    } else {
      // RESET goes back to the session's default, the startup packet's value included.
      resets += Cat("RESET ", QuoteIdent(ToLower(it->first)), ";");
    }
    if (baseline != baseline_.end()) {
      it->second = baseline->second;
      ++it;
    } else {
      it = applied_.erase(it);
    }
  }
  bool sent = false;
  if (!sets.empty() || !resets.empty()) {
    SendInternal(Cat(resets, sets.empty() ? "" : Cat(sets, ";")));
    sent = true;
    ++param_gen_;
  } else {
    apply_gen_ = param_gen_;
    if (apply_wanted_ != wanted) {
      apply_wanted_ = wanted;
    }
  }
  // After the parameters, so that a statement is prepared under the client's search_path.
  return ApplySqlStatements(wanted) || sent;
}

bool ServerCodec::SendReadBack(const std::vector<std::string>& names) {
  reading_baseline_ = false;
  if (std::any_of(names.begin(), names.end(),
                  [](const std::string& n) { return SqlStatementOfParam(n).has_value(); })) {
    // A client's SQL-level statements are no server parameters: the codec follows them itself.
    std::vector<std::string> real;
    std::copy_if(names.begin(), names.end(), std::back_inserter(real),
                 [](const std::string& n) { return !SqlStatementOfParam(n).has_value(); });
    return SendReadBack(real);
  }
  if (names.empty()) {
    return false;
  }
  std::string sql = "SELECT ";
  for (size_t i = 0; i < names.size(); ++i) {
    sql +=
        Cat(i == 0 ? "" : ", ", "pg_catalog.current_setting(", QuoteLiteral(names[i]), ", true)");
  }
  read_back_ = names;
  SendInternal(sql);
  return true;
}

void ServerCodec::OnReadBackRow(ByteView body) {
  Reader r(body);
  auto columns = r.U16();
  if (!columns || *columns != read_back_.size()) {
    return;
  }
  for (const std::string& name : read_back_) {
    auto len = r.U32();
    if (!len) {
      return;
    }
    if (*len == 0xffffffff) {
      continue;  // NULL: no such parameter (a custom one never set)
    }
    auto value = r.Bytes(*len);
    if (!value) {
      return;
    }
    // Only into applied_: params_ holds what the server reports, and it reports these (if at all)
    // when they change; a copy there would go stale at the next RESET.
    NoteChanged(name, *value);
    if (reading_baseline_) {
      ++param_gen_;
      auto it = FindParam(baseline_, name);
      if (it != baseline_.end()) {
        it->second = std::string(*value);
      } else {
        baseline_.emplace_back(name, std::string(*value));
      }
    }
    sink_.OnParameterStatus(name, *value);
  }
}

bool ServerCodec::SendBaseline(const std::vector<std::string>& init_sql) {
  baseline_ = applied_;
  ++param_gen_;
  std::vector<std::string> names;
  for (const std::string& sql : init_sql) {
    for (std::string& name : ClassifySql(sql).read_back) {
      if (std::find(names.begin(), names.end(), name) == names.end()) {
        names.push_back(std::move(name));
      }
    }
  }
  bool sent = SendReadBack(names);
  reading_baseline_ = sent;
  return sent;
}

std::vector<std::string> ServerCodec::BaselineNames() const {
  std::vector<std::string> names;
  for (const auto& [name, value] : baseline_) {
    auto login = FindParam(login_.params, name);
    if (login == login_.params.end() || login->second != value) {
      names.push_back(ToLower(name));
    }
  }
  return names;
}

}  // namespace wirepool::codec::postgres
