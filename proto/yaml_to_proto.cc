#include "proto/yaml_to_proto.h"

#include <algorithm>
#include <cstdint>
#include <limits>
#include <optional>
#include <string>
#include <string_view>
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
#include "absl/time/time.h"
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

// The largest value a google.protobuf.Duration holds (10,000 years).
constexpr int64_t kMaxProtoDurationSeconds = 315'576'000'000;
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
  explicit YamlReader(YamlErrors* errors) : errors_(errors) {}

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
    if (value.IsScalar() && field->options().GetExtension(one_or_list)) {
      // One item written without the list around it (`init_sql: SET ...`).
      errors_->NoteLine(absl::StrCat(path, "[0]"), line);
      ReadValue(value, absl::StrCat(path, "[0]"), line, field, message);
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

  YamlErrors* errors_;
};
}  // namespace

void YamlErrors::NoteLine(const std::string& path, int line) {
  if (line > 0) {
    lines_.emplace(path, line);
  }
}

void YamlErrors::AddAtLine(const std::string& path, int line, absl::string_view message,
                           bool unread) {
  if (unread) {
    flagged_.insert(path);
  }
  Push(path, line, message);
}

void YamlErrors::Add(const std::string& path, absl::string_view message) {
  if (IsFlagged(path)) {
    return;
  }
  Push(path, FindLine(path), message);
}

absl::Status YamlErrors::ToStatus() const {
  return absl::InvalidArgumentError(absl::StrJoin(messages_, "\n"));
}

namespace {

// Calls `visit` with `path` and each of its parents (`a[0].b` -> `a[0]` -> `a`) until it returns
// true.
template <typename Visit>
bool AnyPrefix(std::string path, Visit visit) {
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

}  // namespace

bool YamlErrors::IsFlagged(const std::string& path) const {
  return AnyPrefix(path, [this](const std::string& p) { return flagged_.contains(p); });
}

int YamlErrors::FindLine(const std::string& path) const {
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

void YamlErrors::Push(const std::string& path, int line, absl::string_view message) {
  std::string text = path.empty() ? "config" : path;
  if (line > 0) {
    absl::StrAppend(&text, " (line ", line, ")");
  }
  absl::StrAppend(&text, ": ", message);
  messages_.push_back(std::move(text));
}

absl::Status ReadYaml(std::string_view yaml, Message& message, YamlErrors& errors) {
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
    YamlReader(&errors).ReadMessage(root, "", LineOf(root.Mark()), &message);
  } catch (const YAML::ParserException& e) {
    // The message names the construct, never the text, so no secret can leak through it.
    return absl::InvalidArgumentError(absl::StrCat("config (line ", e.mark.line + 1, ", column ",
                                                   e.mark.column + 1, "): invalid YAML: ", e.msg));
  } catch (const YAML::Exception& e) {
    errors.AddAtLine("", LineOf(e.mark), absl::StrCat("cannot read the YAML: ", e.msg),
                     /*unread=*/true);
    return errors.ToStatus();
  }
  return absl::OkStatus();
}

}  // namespace wirepool::config
