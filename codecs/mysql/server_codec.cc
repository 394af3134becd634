#include "codecs/mysql/server_codec.h"

#include <algorithm>
#include <cctype>
#include <utility>

#include "codecs/mysql/wire.h"
#include "core/strings.h"

// The login lives in server_login.cc, the response framing in server_response.cc; this file holds
// what both use: dispatch, the requests the codec sends itself, and the session state it tracks.

namespace wirepool::codec::mysql {
namespace {

// Session-state entry types (OK packets with SERVER_SESSION_STATE_CHANGED).
constexpr uint8_t kTrackSystemVariables = 0;
constexpr uint8_t kTrackSchema = 1;

bool EqualsIgnoreCase(std::string_view a, std::string_view b) {
  return a.size() == b.size() && std::equal(a.begin(), a.end(), b.begin(), [](char x, char y) {
           return std::tolower(static_cast<unsigned char>(x)) ==
                  std::tolower(static_cast<unsigned char>(y));
         });
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
  if (ok.status & kStatusDbDropped) {
    // The selected database was dropped: the session has none now, unless tracking says more.
    schema_known_ = false;
  }
  bool schema_reported = false;
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
    if (*type == kTrackSchema) {
      if (auto name = d.LenencString()) {
        schema_ = std::string(*name);
        schema_known_ = true;
        tracking_schema_ = true;
        schema_reported = true;
      }
    } else if (*type == kTrackSystemVariables) {
      auto name = d.LenencString();
      auto value = name ? d.LenencString() : std::nullopt;
      if (value) {
        SetParameter(*name, *value);
        if (report) {
          sink_.OnParameterStatus(*name, *value);
        }
      }
    }
  }
  return schema_reported;
}

// ---- Requests of the codec's own ---------------------------------------------------------------

void ServerCodec::ExpectResponse(uint32_t tag) {
  uint32_t command = tag & 0xff;
  if (command == kComQuit || command == kComStmtClose || command == kComStmtSendLongData) {
    return;  // the server answers these with nothing
  }
  pending_.push_back(Pending{tag & 0xff, false, "", (tag & kTagMultiPacket) != 0});
  if (!tracking_schema_) {
    // The client may run USE, and nothing would tell.
    schema_known_ = false;
  }
}

void ServerCodec::SendInternal(uint8_t command, std::string_view arg, std::string schema) {
  Writer w;
  w.U8(command).Bytes(arg);
  SendPacket(w.payload(), 0);
  pending_.push_back(Pending{command, true, std::move(schema)});
}

void ServerCodec::SendInternalQuery(std::string_view sql) { SendInternal(kComQuery, sql, ""); }

void ServerCodec::SendReset() {
  if (login_.reset_method == kResetChangeUser || reset_refused_) {
    SendChangeUser();
    return;
  }
  // COM_RESET_CONNECTION keeps the selected database, so what is known of it stays true.
  SendInternal(kComResetConnection, "", "");
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
