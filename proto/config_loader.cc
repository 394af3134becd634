#include "proto/config_loader.h"

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <limits>
#include <optional>
#include <string>
#include <string_view>
#include <system_error>
#include <utility>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/container/flat_hash_set.h"
#include "absl/status/status.h"
#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/string_view.h"
#include "absl/strings/strip.h"
#include "google/protobuf/descriptor.h"
#include "google/protobuf/message.h"
#include "proto/config.pb.h"
#include "yaml-cpp/yaml.h"

namespace wirepool::config {
namespace {

using google::protobuf::Descriptor;
using google::protobuf::FieldDescriptor;
using google::protobuf::Message;
using google::protobuf::OneofDescriptor;
using google::protobuf::Reflection;

constexpr int kScramIterations = 4096;
constexpr size_t kScramSaltBytes = 16;
// The largest value a google.protobuf.Duration holds (10,000 years).
constexpr int64_t kMaxProtoDurationSeconds = 315'576'000'000;
constexpr absl::Duration kMaxClientLoginTimeout = absl::Minutes(15);
constexpr size_t kMaxConfigFileBytes = 16 << 20;
constexpr size_t kMaxSecretFileBytes = 64 << 10;
constexpr char kDurationFullName[] = "google.protobuf.Duration";
constexpr char kDurationHint[] = "such as 5s, 250ms or 1m30s";

// 1-based line of a YAML mark, or 0 when yaml-cpp has no position.
int LineOf(const YAML::Mark& mark) { return mark.is_null() ? 0 : mark.line + 1; }

// The line of a value, or `fallback` (its key's) when yaml-cpp has none. yaml-cpp places an empty
// value on the token after it, often the next line, so an empty value takes the fallback too.
int ValueLine(const YAML::Node& value, int fallback) {
  const int line = value.IsNull() ? 0 : LineOf(value.Mark());
  return line == 0 ? fallback : line;
}

// What a node is, for "expected X, got Y" messages. Never the node's text: it may be a secret.
absl::string_view Describe(const YAML::Node& node) {
  if (node.IsMap()) {
    return "a map";
  }
  if (node.IsSequence()) {
    return "a list";
  }
  if (node.IsScalar()) {
    return "a value";
  }
  return "nothing";
}

absl::Status ErrnoStatus(int err, absl::string_view what) {
  std::string message = absl::StrCat(what, ": ", std::generic_category().message(err));
  switch (err) {
    case ENOENT:
    case ENOTDIR:
      return absl::NotFoundError(message);
    case EACCES:
    case EPERM:
      return absl::PermissionDeniedError(message);
    default:
      return absl::UnavailableError(message);
  }
}

// Reads a whole file of at most `max_bytes`.
absl::StatusOr<std::string> ReadWholeFile(const std::string& path, size_t max_bytes) {
  const std::string what = absl::StrCat("cannot read '", path, "'");
  std::FILE* file = std::fopen(path.c_str(), "rb");
  if (file == nullptr) {
    return ErrnoStatus(errno, what);
  }
  std::string data;
  char buffer[4096];
  size_t n;
  while ((n = std::fread(buffer, 1, sizeof(buffer), file)) > 0 && data.size() <= max_bytes) {
    data.append(buffer, n);
  }
  const bool failed = std::ferror(file) != 0;
  const int err = errno;
  std::fclose(file);
  if (failed) {
    return ErrnoStatus(err, what);
  }
  if (data.size() > max_bytes) {
    return absl::InvalidArgumentError(absl::StrCat(what, ": larger than ", max_bytes, " bytes"));
  }
  return data;
}

// Levenshtein distance, for "did you mean" hints on unknown keys.
size_t EditDistance(absl::string_view a, absl::string_view b) {
  std::vector<size_t> row(b.size() + 1);
  for (size_t j = 0; j <= b.size(); ++j) {
    row[j] = j;
  }
  for (size_t i = 1; i <= a.size(); ++i) {
    size_t diagonal = row[0];
    row[0] = i;
    for (size_t j = 1; j <= b.size(); ++j) {
      const size_t above = row[j];
      row[j] = std::min({row[j] + 1, row[j - 1] + 1, diagonal + (a[i - 1] == b[j - 1] ? 0 : 1)});
      diagonal = above;
    }
  }
  return row[b.size()];
}

std::string UnknownKeyMessage(const Descriptor* descriptor, absl::string_view key) {
  const FieldDescriptor* best = nullptr;
  size_t best_distance = 3;  // suggest only names at most two edits away
  for (int i = 0; i < descriptor->field_count(); ++i) {
    const FieldDescriptor* field = descriptor->field(i);
    const size_t distance = EditDistance(key, field->name());
    if (distance < best_distance && distance < key.size()) {
      best = field;
      best_distance = distance;
    }
  }
  if (best == nullptr) {
    return "unknown key";
  }
  return absl::StrCat("unknown key (did you mean '", best->name(), "'?)");
}

// Every problem found in one load, each tied to a YAML path and, when known, a line.
class ErrorList {
 public:
  // Remembers the line of the value at `path` for problems found later by the semantic checks.
  void NoteLine(const std::string& path, int line) {
    if (line > 0) {
      lines_.emplace(path, line);
    }
  }

  // A problem found while reading the YAML at `path`. `unread` says the value there was left
  // unset, so the semantic checks say nothing more about it.
  void AddAtLine(const std::string& path, int line, absl::string_view message, bool unread) {
    if (unread) {
      flagged_.insert(path);
    }
    Push(path, line, message);
  }

  // A problem found by the semantic checks. Its line is the nearest one noted at or above `path`.
  // Skipped when `path` or a value around it could not be read: that problem is already reported
  // and the unset value would only be reported again as missing.
  void Add(const std::string& path, absl::string_view message) {
    if (IsFlagged(path)) {
      return;
    }
    Push(path, FindLine(path), message);
  }

  bool empty() const { return messages_.empty(); }

  absl::Status ToStatus() const {
    return absl::InvalidArgumentError(absl::StrJoin(messages_, "\n"));
  }

 private:
  // Calls `visit` with `path` and each of its parents (`a[0].b` -> `a[0]` -> `a`) until it
  // returns true.
  template <typename Visit>
  static bool AnyPrefix(std::string path, Visit visit) {
    while (!path.empty()) {
      if (visit(path)) {
        return true;
      }
      const size_t cut = path.find_last_of(".[");
      if (cut == std::string::npos) {
        return false;
      }
      path.resize(cut);
    }
    return false;
  }

  bool IsFlagged(const std::string& path) const {
    return AnyPrefix(path, [this](const std::string& p) { return flagged_.contains(p); });
  }

  int FindLine(const std::string& path) const {
    int line = 0;
    AnyPrefix(path, [&](const std::string& p) {
      auto it = lines_.find(p);
      if (it == lines_.end()) {
        return false;
      }
      line = it->second;
      return true;
    });
    return line;
  }

  void Push(const std::string& path, int line, absl::string_view message) {
    std::string text = path.empty() ? "config" : path;
    if (line > 0) {
      absl::StrAppend(&text, " (line ", line, ")");
    }
    absl::StrAppend(&text, ": ", message);
    messages_.push_back(std::move(text));
  }

  std::vector<std::string> messages_;
  absl::flat_hash_map<std::string, int> lines_;
  absl::flat_hash_set<std::string> flagged_;
};

// ---------------------------------------------------------------------------------------------
// YAML -> proto, by reflection: a map's keys are the message's field names.

template <typename T>
using Setter = void (Reflection::*)(Message*, const FieldDescriptor*, T) const;

// Sets a singular field or appends to a repeated one.
template <typename T>
void Store(Message* message, const FieldDescriptor* field, T value, Setter<T> set, Setter<T> add) {
  const Reflection* reflection = message->GetReflection();
  (reflection->*(field->is_repeated() ? add : set))(message, field, std::move(value));
}

// Text to value for each scalar type; false when the text is not one.
bool ParseScalar(absl::string_view text, bool* value) {
  const std::string lower = absl::AsciiStrToLower(text);
  *value = lower == "true";
  return lower == "true" || lower == "false";
}
bool ParseScalar(absl::string_view text, int32_t* value) { return absl::SimpleAtoi(text, value); }
bool ParseScalar(absl::string_view text, int64_t* value) { return absl::SimpleAtoi(text, value); }
// SimpleAtoi reads "-0" as an unsigned 0; a minus sign is never a valid unsigned value.
bool ParseScalar(absl::string_view text, uint32_t* value) {
  return !absl::StartsWith(text, "-") && absl::SimpleAtoi(text, value);
}
bool ParseScalar(absl::string_view text, uint64_t* value) {
  return !absl::StartsWith(text, "-") && absl::SimpleAtoi(text, value);
}
bool ParseScalar(absl::string_view text, float* value) { return absl::SimpleAtof(text, value); }
bool ParseScalar(absl::string_view text, double* value) { return absl::SimpleAtod(text, value); }

// Parses `text` as a T and stores it; false when it is no T.
template <typename T>
bool ParseAndStore(absl::string_view text, Message* message, const FieldDescriptor* field,
                   Setter<T> set, Setter<T> add) {
  T value{};
  if (!ParseScalar(text, &value)) {
    return false;
  }
  Store<T>(message, field, value, set, add);
  return true;
}

// What a scalar field takes, for "expected X" messages.
std::string Expected(const FieldDescriptor* field) {
  switch (field->cpp_type()) {
    case FieldDescriptor::CPPTYPE_STRING:
      return "a string";
    case FieldDescriptor::CPPTYPE_BOOL:
      return "true or false";
    case FieldDescriptor::CPPTYPE_INT32:
    case FieldDescriptor::CPPTYPE_INT64:
      return "an integer";
    case FieldDescriptor::CPPTYPE_UINT32:
      return absl::StrCat("a non-negative integer no larger than ",
                          std::numeric_limits<uint32_t>::max());
    case FieldDescriptor::CPPTYPE_UINT64:
      return absl::StrCat("a non-negative integer no larger than ",
                          std::numeric_limits<uint64_t>::max());
    case FieldDescriptor::CPPTYPE_FLOAT:
    case FieldDescriptor::CPPTYPE_DOUBLE:
      return "a number";
    case FieldDescriptor::CPPTYPE_ENUM: {
      std::vector<std::string> names;
      for (int i = 0; i < field->enum_type()->value_count(); ++i) {
        names.push_back(field->enum_type()->value(i)->name());
      }
      return absl::StrCat("one of ", absl::StrJoin(names, ", "));
    }
    case FieldDescriptor::CPPTYPE_MESSAGE:
      return field->message_type()->full_name() == kDurationFullName
                 ? absl::StrCat("a duration ", kDurationHint)
                 : "a map";
  }
  return "a value";
}

class YamlReader {
 public:
  explicit YamlReader(ErrorList* errors) : errors_(errors) {}

  // Reads a YAML map into `message`. `line` is where the map is, for errors about it as a whole.
  void ReadMessage(const YAML::Node& node, const std::string& path, int line, Message* message) {
    if (!node.IsMap()) {
      Error(path, line, absl::StrCat("expected a map, got ", Describe(node)));
      return;
    }
    const Descriptor* descriptor = message->GetDescriptor();
    absl::flat_hash_set<std::string> seen;
    absl::flat_hash_map<const OneofDescriptor*, std::string> oneof_seen;
    for (auto it = node.begin(); it != node.end(); ++it) {
      // Copies: the iterator hands out a temporary pair.
      const YAML::Node key = it->first;
      const YAML::Node value = it->second;
      const int key_line = LineOf(key.Mark());
      if (!key.IsScalar()) {
        Error(path, key_line, "a key must be a plain name");
        continue;
      }
      const std::string& name = key.Scalar();
      const std::string child = path.empty() ? name : absl::StrCat(path, ".", name);
      if (!seen.insert(name).second) {
        KeyError(child, key_line, "duplicate key");
        continue;
      }
      const FieldDescriptor* field = descriptor->FindFieldByName(name);
      if (field == nullptr) {
        KeyError(child, key_line, UnknownKeyMessage(descriptor, name));
        continue;
      }
      if (const OneofDescriptor* oneof = field->real_containing_oneof(); oneof != nullptr) {
        auto [other, inserted] = oneof_seen.emplace(oneof, name);
        if (!inserted) {
          KeyError(child, key_line,
                   absl::StrCat("only one of ", other->second, " and ", name, " may be set"));
          continue;
        }
      }
      const int value_line = ValueLine(value, key_line);
      errors_->NoteLine(child, value_line);
      ReadField(value, child, value_line, field, message);
    }
  }

 private:
  void ReadField(const YAML::Node& value, const std::string& path, int line,
                 const FieldDescriptor* field, Message* message) {
    if (field->is_map()) {
      ReadMapField(value, path, line, field, message);
      return;
    }
    if (!field->is_repeated()) {
      ReadValue(value, path, line, field, message);
      return;
    }
    if (!value.IsSequence()) {
      Error(path, line, absl::StrCat("expected a list, got ", Describe(value)));
      return;
    }
    size_t index = 0;
    for (auto it = value.begin(); it != value.end(); ++it, ++index) {
      const YAML::Node item = *it;
      const std::string item_path = absl::StrCat(path, "[", index, "]");
      const int item_line = ValueLine(item, line);
      errors_->NoteLine(item_path, item_line);
      ReadValue(item, item_path, item_line, field, message);
    }
  }

  // A proto map field: a YAML map whose keys and values are read as the entry's key and value.
  void ReadMapField(const YAML::Node& value, const std::string& path, int line,
                    const FieldDescriptor* field, Message* message) {
    if (!value.IsMap()) {
      Error(path, line, absl::StrCat("expected a map, got ", Describe(value)));
      return;
    }
    const Descriptor* entry_type = field->message_type();
    for (auto it = value.begin(); it != value.end(); ++it) {
      const YAML::Node key = it->first;
      const YAML::Node item = it->second;
      const int key_line = LineOf(key.Mark());
      if (!key.IsScalar()) {
        Error(path, key_line, "a key must be a plain name");
        continue;
      }
      const std::string entry_path = absl::StrCat(path, ".", key.Scalar());
      const int item_line = ValueLine(item, key_line);
      errors_->NoteLine(entry_path, item_line);
      Message* entry = message->GetReflection()->AddMessage(message, field);
      ReadValue(key, entry_path, key_line, entry_type->map_key(), entry);
      ReadValue(item, entry_path, item_line, entry_type->map_value(), entry);
    }
  }

  // Reads one value (a list's item, or a singular field) of `field`'s type.
  void ReadValue(const YAML::Node& value, const std::string& path, int line,
                 const FieldDescriptor* field, Message* message) {
    const Reflection* reflection = message->GetReflection();
    if (field->cpp_type() != FieldDescriptor::CPPTYPE_MESSAGE) {
      ReadScalar(value, path, line, field, message);
      return;
    }
    if (field->message_type()->full_name() == kDurationFullName) {
      std::optional<absl::Duration> duration = ReadDuration(value, path, line);
      if (duration.has_value()) {
        SetDuration(*duration, field->is_repeated() ? reflection->AddMessage(message, field)
                                                    : reflection->MutableMessage(message, field));
      }
      return;
    }
    ReadMessage(value, path, line,
                field->is_repeated() ? reflection->AddMessage(message, field)
                                     : reflection->MutableMessage(message, field));
  }

  void ReadScalar(const YAML::Node& value, const std::string& path, int line,
                  const FieldDescriptor* field, Message* message) {
    if (!value.IsScalar()) {
      Error(path, line, absl::StrCat("expected ", Expected(field), ", got ", Describe(value)));
      return;
    }
    const std::string& text = value.Scalar();
    if (field->cpp_type() == FieldDescriptor::CPPTYPE_STRING) {
      Store<std::string>(message, field, text, &Reflection::SetString, &Reflection::AddString);
      return;
    }
    // A quoted scalar is a string in YAML, so it is no number or bool.
    const bool quoted = value.Tag() == "!";
    if (!quoted && ParseNonString(text, field, message)) {
      return;
    }
    // Not a string field, so the text is no secret and helps to find the mistake.
    Error(path, line,
          absl::StrCat("expected ", Expected(field), ", got ", quoted ? "the string '" : "'", text,
                       "'"));
  }

  static bool ParseNonString(absl::string_view text, const FieldDescriptor* field,
                             Message* message) {
    using R = Reflection;
    switch (field->cpp_type()) {
      case FieldDescriptor::CPPTYPE_BOOL:
        return ParseAndStore<bool>(text, message, field, &R::SetBool, &R::AddBool);
      case FieldDescriptor::CPPTYPE_INT32:
        return ParseAndStore<int32_t>(text, message, field, &R::SetInt32, &R::AddInt32);
      case FieldDescriptor::CPPTYPE_INT64:
        return ParseAndStore<int64_t>(text, message, field, &R::SetInt64, &R::AddInt64);
      case FieldDescriptor::CPPTYPE_UINT32:
        return ParseAndStore<uint32_t>(text, message, field, &R::SetUInt32, &R::AddUInt32);
      case FieldDescriptor::CPPTYPE_UINT64:
        return ParseAndStore<uint64_t>(text, message, field, &R::SetUInt64, &R::AddUInt64);
      case FieldDescriptor::CPPTYPE_FLOAT:
        return ParseAndStore<float>(text, message, field, &R::SetFloat, &R::AddFloat);
      case FieldDescriptor::CPPTYPE_DOUBLE:
        return ParseAndStore<double>(text, message, field, &R::SetDouble, &R::AddDouble);
      case FieldDescriptor::CPPTYPE_ENUM: {
        const auto* enum_value = field->enum_type()->FindValueByName(std::string(text));
        if (enum_value == nullptr) {
          return false;
        }
        Store<int>(message, field, enum_value->number(), &R::SetEnumValue, &R::AddEnumValue);
        return true;
      }
      case FieldDescriptor::CPPTYPE_STRING:
      case FieldDescriptor::CPPTYPE_MESSAGE:
        return false;  // read elsewhere
    }
    return false;
  }

  std::optional<absl::Duration> ReadDuration(const YAML::Node& value, const std::string& path,
                                             int line) {
    if (!value.IsScalar()) {
      Error(path, line,
            absl::StrCat("expected a duration ", kDurationHint, ", got ", Describe(value)));
      return std::nullopt;
    }
    const std::string& text = value.Scalar();
    absl::Duration duration;
    // absl::ParseDuration also takes a bare "0".
    if (!absl::ParseDuration(text, &duration)) {
      Error(path, line,
            absl::StrCat("invalid duration '", text, "' (write it with a unit, ", kDurationHint,
                         ")"));
      return std::nullopt;
    }
    if (duration < absl::ZeroDuration()) {
      Error(path, line, absl::StrCat("duration '", text, "' must not be negative"));
      return std::nullopt;
    }
    if (duration > absl::Seconds(kMaxProtoDurationSeconds)) {
      Error(path, line, absl::StrCat("duration '", text, "' is too long"));
      return std::nullopt;
    }
    return duration;
  }

  static void SetDuration(absl::Duration duration, Message* message) {
    const Descriptor* descriptor = message->GetDescriptor();
    const Reflection* reflection = message->GetReflection();
    absl::Duration remainder;
    const int64_t seconds = absl::IDivDuration(duration, absl::Seconds(1), &remainder);
    reflection->SetInt64(message, descriptor->FindFieldByName("seconds"), seconds);
    reflection->SetInt32(message, descriptor->FindFieldByName("nanos"),
                         static_cast<int32_t>(absl::ToInt64Nanoseconds(remainder)));
  }

  // A value that could not be read; it stays unset.
  void Error(const std::string& path, int line, absl::string_view message) {
    errors_->AddAtLine(path, line, message, /*unread=*/true);
  }

  // A key that is not read at all; whatever the checks find about the field stands.
  void KeyError(const std::string& path, int line, absl::string_view message) {
    errors_->AddAtLine(path, line, message, /*unread=*/false);
  }

  ErrorList* errors_;
};

// ---------------------------------------------------------------------------------------------
// Semantic checks: proto -> Settings.

absl::Duration FromProto(const google::protobuf::Duration& duration) {
  return absl::Seconds(duration.seconds()) + absl::Nanoseconds(duration.nanos());
}

std::string FormatEndpoint(const Endpoint& endpoint) {
  if (absl::StrContains(endpoint.host, ':')) {
    return absl::StrCat("[", endpoint.host, "]:", endpoint.port);
  }
  return absl::StrCat(endpoint.host, ":", endpoint.port);
}

// Parses "host:port" or "[ipv6]:port"; on failure returns the reason.
absl::StatusOr<Endpoint> ParseEndpoint(absl::string_view text, uint32_t min_port) {
  absl::string_view host;
  absl::string_view port;
  if (absl::StartsWith(text, "[")) {
    const size_t close = text.find(']');
    if (close == absl::string_view::npos) {
      return absl::InvalidArgumentError("missing ']' after the IPv6 address");
    }
    host = text.substr(1, close - 1);
    port = text.substr(close + 1);
    if (!absl::ConsumePrefix(&port, ":")) {
      return absl::InvalidArgumentError("expected ':' and a port after ']'");
    }
  } else {
    const size_t colon = text.rfind(':');
    if (colon == absl::string_view::npos) {
      return absl::InvalidArgumentError("expected host:port");
    }
    host = text.substr(0, colon);
    port = text.substr(colon + 1);
    if (absl::StrContains(host, ':')) {
      return absl::InvalidArgumentError("write an IPv6 address in brackets, such as [::1]:6432");
    }
  }
  if (host.empty()) {
    return absl::InvalidArgumentError("missing host");
  }
  if (std::any_of(host.begin(), host.end(), [](char c) {
        return absl::ascii_isspace(static_cast<unsigned char>(c)) || c == '[' || c == ']' ||
               c == '/';
      })) {
    return absl::InvalidArgumentError("invalid host");
  }
  uint32_t value = 0;
  const bool digits =
      !port.empty() && port.size() <= 5 && std::all_of(port.begin(), port.end(), [](char c) {
        return absl::ascii_isdigit(static_cast<unsigned char>(c));
      });
  if (!digits || !absl::SimpleAtoi(port, &value) || value < min_port || value > 65535) {
    return absl::InvalidArgumentError(
        absl::StrCat("the port must be a number from ", min_port, " to 65535"));
  }
  return Endpoint{std::string(host), static_cast<uint16_t>(value)};
}

// The three ways of giving one secret: inline, from an environment variable, from a file.
struct SecretForms {
  absl::string_view key;               // "password" or "backend_password"
  const std::string* value = nullptr;  // each null when not set in the YAML
  const std::string* env = nullptr;
  const std::string* file = nullptr;
};

const std::string* IfSet(bool has, const std::string& value) { return has ? &value : nullptr; }

class Validator {
 public:
  Validator(ErrorList* errors, const LoadOptions& options, std::filesystem::path base_dir)
      : errors_(*errors), options_(options), base_dir_(std::move(base_dir)) {}

  Settings Run(const Config& config) {
    Settings settings;
    if (config.has_workers()) {
      if (config.workers() > 1) {
        errors_.Add("workers", absl::StrCat(config.workers(),
                                            " workers are not supported yet in this version; "
                                            "use 1"));
      }
      // 0 means one per core; while only one event loop is supported, that is one.
      settings.workers = 1;
    }
    if (config.has_shutdown_timeout()) {
      settings.shutdown_timeout = FromProto(config.shutdown_timeout());
    }
    if (config.has_log_level()) {
      static constexpr std::string_view kLevels[] = {"trace", "debug", "info", "warn", "error"};
      if (std::find(std::begin(kLevels), std::end(kLevels), config.log_level()) ==
          std::end(kLevels)) {
        errors_.Add("log_level", absl::StrCat("unknown level '", config.log_level(),
                                              "' (expected trace, debug, info, warn or error)"));
      }
      settings.log_level = config.log_level();
    }

    absl::flat_hash_map<std::string, int> user_index;
    for (int i = 0; i < config.users_size(); ++i) {
      const std::string path = absl::StrCat("users[", i, "]");
      settings.users.push_back(ResolveUser(config.users(i), path));
      CheckUnique("user", "users", settings.users.back().name, i, path, &user_index);
    }

    if (config.proxies_size() == 0) {
      errors_.Add("proxies", "at least one proxy is required");
    }
    absl::flat_hash_map<std::string, int> proxy_index;
    absl::flat_hash_map<std::string, int> listen_index;
    for (int i = 0; i < config.proxies_size(); ++i) {
      const std::string path = absl::StrCat("proxies[", i, "]");
      settings.proxies.push_back(ResolveProxy(config.proxies(i), path));
      const ProxySettings& proxy = settings.proxies.back();
      CheckUnique("proxy", "proxies", proxy.name, i, path, &proxy_index);
      if (!proxy.listen.host.empty() && proxy.listen.port != 0) {
        auto [it, inserted] = listen_index.emplace(FormatEndpoint(proxy.listen), i);
        if (!inserted) {
          errors_.Add(path + ".listen",
                      absl::StrCat(it->first, " is already the listen address of proxies[",
                                   it->second, "]"));
        }
      }
    }
    return settings;
  }

 private:
  void CheckUnique(absl::string_view kind, absl::string_view list, const std::string& name,
                   int index, const std::string& path,
                   absl::flat_hash_map<std::string, int>* seen) {
    if (name.empty()) {
      errors_.Add(path + ".name", "required");
      return;
    }
    auto [it, inserted] = seen->emplace(name, index);
    if (!inserted) {
      errors_.Add(path + ".name", absl::StrCat("duplicate ", kind, " name '", name, "' (also ",
                                               list, "[", it->second, "])"));
    }
  }

  UserSettings ResolveUser(const User& user, const std::string& path) {
    UserSettings settings;
    settings.name = user.name();
    std::optional<std::string> password =
        ResolveSecret(path,
                      {"password", IfSet(user.has_password(), user.password()),
                       IfSet(user.has_password_env(), user.password_env()),
                       IfSet(user.has_password_file(), user.password_file())},
                      /*required=*/true);
    if (password.has_value()) {
      settings.password = std::move(*password);
    }
    settings.backend_user = user.name();
    if (user.has_backend_user()) {
      if (user.backend_user().empty()) {
        errors_.Add(path + ".backend_user", "must not be empty");
      }
      settings.backend_user = user.backend_user();
    }
    std::optional<std::string> backend_password = ResolveSecret(
        path,
        {"backend_password", IfSet(user.has_backend_password(), user.backend_password()),
         IfSet(user.has_backend_password_env(), user.backend_password_env()),
         IfSet(user.has_backend_password_file(), user.backend_password_file())},
        /*required=*/false);
    settings.backend_password =
        backend_password.has_value() ? std::move(*backend_password) : settings.password;
    return settings;
  }

  // Returns the secret from the one form of it that is set; nullopt when none is (an error if
  // `required`) or on error. A secret never goes into a message.
  std::optional<std::string> ResolveSecret(const std::string& path, const SecretForms& forms,
                                           bool required) {
    const int count = (forms.value != nullptr) + (forms.env != nullptr) + (forms.file != nullptr);
    const std::string choices =
        absl::StrCat(forms.key, ", ", forms.key, "_env, ", forms.key, "_file");
    if (count == 0) {
      if (required) {
        errors_.Add(path, absl::StrCat("one of ", choices, " is required"));
      }
      return std::nullopt;
    }
    if (count > 1) {
      errors_.Add(path, absl::StrCat("only one of ", choices, " may be set"));
      return std::nullopt;
    }
    std::string where;
    std::string secret;
    if (forms.value != nullptr) {
      where = absl::StrCat(path, ".", forms.key);
      secret = *forms.value;
    } else if (forms.env != nullptr) {
      where = absl::StrCat(path, ".", forms.key, "_env");
      if (forms.env->empty()) {
        errors_.Add(where, "must name an environment variable");
        return std::nullopt;
      }
      const char* value = std::getenv(forms.env->c_str());
      if (value == nullptr) {
        errors_.Add(where, absl::StrCat("environment variable '", *forms.env, "' is not set"));
        return std::nullopt;
      }
      secret = value;
    } else {
      where = absl::StrCat(path, ".", forms.key, "_file");
      if (forms.file->empty()) {
        errors_.Add(where, "must name a file");
        return std::nullopt;
      }
      std::filesystem::path file(*forms.file);
      if (file.is_relative() && !base_dir_.empty()) {
        file = base_dir_ / file;
      }
      absl::StatusOr<std::string> contents = ReadWholeFile(file.string(), kMaxSecretFileBytes);
      if (!contents.ok()) {
        errors_.Add(where, contents.status().message());
        return std::nullopt;
      }
      secret = std::move(*contents);
      // `echo secret > file` leaves a newline that is no part of the secret.
      while (!secret.empty() && (secret.back() == '\n' || secret.back() == '\r')) {
        secret.pop_back();
      }
    }
    if (secret.empty()) {
      errors_.Add(where, absl::StrCat(forms.key, " is empty"));
      return std::nullopt;
    }
    return secret;
  }

  ProxySettings ResolveProxy(const Proxy& proxy, const std::string& path) {
    ProxySettings settings;
    settings.name = proxy.name();
    settings.protocol = proxy.protocol();
    CheckProtocol(proxy, path, &settings);

    if (proxy.listen().empty()) {
      errors_.Add(path + ".listen", "required (host:port; port 0 picks a free one)");
    } else if (absl::StatusOr<Endpoint> listen = ParseEndpoint(proxy.listen(), 0); !listen.ok()) {
      errors_.Add(path + ".listen", absl::StrCat("invalid address '", proxy.listen(),
                                                 "': ", listen.status().message()));
    } else {
      settings.listen = *std::move(listen);
    }

    if (proxy.pool_mode().empty()) {
      errors_.Add(path + ".pool_mode", "required (session)");
    } else if (proxy.pool_mode() == "transaction") {
      errors_.Add(path + ".pool_mode",
                  "transaction pooling is not supported yet in this version; use session");
    } else if (proxy.pool_mode() != "session") {
      errors_.Add(path + ".pool_mode",
                  absl::StrCat("unknown pool_mode '", proxy.pool_mode(), "' (expected session)"));
    }
    settings.pool_mode = proxy.pool_mode();

    if (proxy.backends_size() == 0) {
      errors_.Add(path + ".backends", "at least one backend (host:port) is required");
    }
    for (int i = 0; i < proxy.backends_size(); ++i) {
      absl::StatusOr<Endpoint> backend = ParseEndpoint(proxy.backends(i), 1);
      if (!backend.ok()) {
        errors_.Add(absl::StrCat(path, ".backends[", i, "]"),
                    absl::StrCat("invalid address '", proxy.backends(i),
                                 "': ", backend.status().message()));
        continue;
      }
      settings.backends.push_back(*std::move(backend));
    }

    Limit(proxy.has_max_backend_connections(), proxy.max_backend_connections(),
          path + ".max_backend_connections", &settings.max_backend_connections);
    Limit(proxy.has_max_client_connections(), proxy.max_client_connections(),
          path + ".max_client_connections", &settings.max_client_connections);

    Timeout(proxy.has_connection_borrow_timeout(), proxy.connection_borrow_timeout(),
            path + ".connection_borrow_timeout", /*zero_ok=*/false,
            &settings.connection_borrow_timeout);
    Timeout(proxy.has_server_connect_timeout(), proxy.server_connect_timeout(),
            path + ".server_connect_timeout", /*zero_ok=*/false, &settings.server_connect_timeout);
    Timeout(proxy.has_server_idle_timeout(), proxy.server_idle_timeout(),
            path + ".server_idle_timeout", /*zero_ok=*/true, &settings.server_idle_timeout);
    Timeout(proxy.has_server_lifetime(), proxy.server_lifetime(), path + ".server_lifetime",
            /*zero_ok=*/true, &settings.server_lifetime);
    Timeout(proxy.has_client_login_timeout(), proxy.client_login_timeout(),
            path + ".client_login_timeout", /*zero_ok=*/false, &settings.client_login_timeout);
    if (settings.client_login_timeout > kMaxClientLoginTimeout) {
      errors_.Add(path + ".client_login_timeout", "must be at most 15m");
    }
    return settings;
  }

  void CheckProtocol(const Proxy& proxy, const std::string& path, ProxySettings* settings) {
    const std::string& client_auth = proxy.client_auth();
    if (proxy.protocol().empty()) {
      errors_.Add(path + ".protocol", "required");
      return;
    }
    if (!options_.check_protocol) {
      settings->client_auth = client_auth;
      return;
    }
    // The protocol alone first, so that an error lands on the key that is wrong.
    absl::StatusOr<std::string> effective = options_.check_protocol(proxy.protocol(), "");
    if (!effective.ok()) {
      errors_.Add(path + ".protocol", effective.status().message());
      return;
    }
    if (!client_auth.empty()) {
      effective = options_.check_protocol(proxy.protocol(), client_auth);
      if (!effective.ok()) {
        errors_.Add(path + ".client_auth", effective.status().message());
        return;
      }
    }
    settings->client_auth = *std::move(effective);
  }

  void Limit(bool has, uint32_t value, const std::string& path, uint32_t* out) {
    if (!has) {
      return;
    }
    if (value < 1) {
      errors_.Add(path, "must be at least 1");
    }
    *out = value;
  }

  void Timeout(bool has, const google::protobuf::Duration& value, const std::string& path,
               bool zero_ok, absl::Duration* out) {
    if (!has) {
      return;
    }
    *out = FromProto(value);
    if (!zero_ok && *out <= absl::ZeroDuration()) {
      errors_.Add(path, "must be greater than 0");
    }
  }

  ErrorList& errors_;
  const LoadOptions& options_;
  const std::filesystem::path base_dir_;
};

void DeriveScramKeys(UserSettings* user) {
  std::string salt(kScramSaltBytes, '\0');
  crypto::RandomBytes(reinterpret_cast<uint8_t*>(salt.data()), salt.size());
  user->scram = crypto::DeriveScramKeys(user->password, salt, kScramIterations);
}

absl::StatusOr<Settings> Load(std::string_view yaml, const LoadOptions& options,
                              const std::filesystem::path& base_dir) {
  ErrorList errors;
  Config config;
  // yaml-cpp reports by exception; none gets past this function.
  try {
    std::vector<YAML::Node> documents = YAML::LoadAll(std::string(yaml));
    if (documents.empty() || documents[0].IsNull()) {
      return absl::InvalidArgumentError("config: the config is empty");
    }
    const YAML::Node& root = documents[0];
    if (!root.IsMap()) {
      return absl::InvalidArgumentError(absl::StrCat("config (line ", LineOf(root.Mark()),
                                                     "): expected a map, got ", Describe(root)));
    }
    if (documents.size() > 1) {
      errors.AddAtLine("", LineOf(documents[1].Mark()), "only one YAML document is allowed",
                       /*unread=*/false);
    }
    YamlReader(&errors).ReadMessage(root, "", LineOf(root.Mark()), &config);
  } catch (const YAML::ParserException& e) {
    // The message names the construct, never the text, so no secret can leak through it.
    return absl::InvalidArgumentError(absl::StrCat("config (line ", e.mark.line + 1, ", column ",
                                                   e.mark.column + 1, "): invalid YAML: ", e.msg));
  } catch (const YAML::Exception& e) {
    errors.AddAtLine("", LineOf(e.mark), absl::StrCat("cannot read the YAML: ", e.msg),
                     /*unread=*/true);
    return errors.ToStatus();
  }

  Settings settings = Validator(&errors, options, base_dir).Run(config);
  if (!errors.empty()) {
    return errors.ToStatus();
  }
  for (UserSettings& user : settings.users) {
    DeriveScramKeys(&user);
  }
  return settings;
}

}  // namespace

absl::StatusOr<Settings> LoadFile(const std::string& path, const LoadOptions& options) {
  absl::StatusOr<std::string> yaml = ReadWholeFile(path, kMaxConfigFileBytes);
  if (!yaml.ok()) {
    return yaml.status();
  }
  return Load(*yaml, options, std::filesystem::path(path).parent_path());
}

absl::StatusOr<Settings> LoadString(std::string_view yaml, const LoadOptions& options) {
  return Load(yaml, options, std::filesystem::path());
}

}  // namespace wirepool::config
