#pragma once

// Reads YAML into any protobuf message by reflection: a YAML map's keys are the message's field
// names, a list fills a repeated field (so does a single value, when the field carries the option
// `(wirepool.config.one_or_list) = true`), a map fills a proto map, and a google.protobuf.Duration
// is written as text such as 5s, 250ms or 1m30s. Unknown and duplicate keys, values of the wrong
// type and a second member of a oneof are problems; every one found is collected in a YamlErrors,
// each as `<yaml path> (line N): <message>`, e.g. `proxies[0].listen (line 7): expected a string,
// got a list`. The text of a string value never appears in a message: it may be a secret.

#include <string>
#include <string_view>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/container/flat_hash_set.h"
#include "absl/status/status.h"
#include "absl/strings/string_view.h"
#include "google/protobuf/message.h"

namespace wirepool::config {

// Every problem found in one load, each tied to a YAML path (`users[0].name`; the empty path, shown
// as `config`, is the document as a whole) and, when known, a 1-based line.
class YamlErrors {
 public:
  // Remembers the line of the value at `path` for problems found later by Add. Called by the
  // reader for every value it reads.
  void NoteLine(const std::string& path, int line);

  // A problem found while reading the YAML at `path` (`line` 0 when unknown). `unread` says the
  // value there was left unset, so that Add says nothing more about it.
  void AddAtLine(const std::string& path, int line, absl::string_view message, bool unread);

  // A problem found after reading, e.g. by semantic checks on the message. Its line is the nearest
  // one noted at or above `path`. Skipped when `path` or a value around it could not be read: that
  // problem is already reported and the unset value would only be reported again as missing.
  void Add(const std::string& path, absl::string_view message);

  bool empty() const { return messages_.empty(); }

  // InvalidArgument listing every problem, one per line, in the order found.
  absl::Status ToStatus() const;

 private:
  bool IsFlagged(const std::string& path) const;
  int FindLine(const std::string& path) const;
  void Push(const std::string& path, int line, absl::string_view message);

  std::vector<std::string> messages_;
  absl::flat_hash_map<std::string, int> lines_;
  absl::flat_hash_set<std::string> flagged_;
};

// Reads the YAML text `yaml`, which must hold one document whose root is a map, into `message`.
// Problems with keys and values are added to `errors` and the values concerned left unset; the
// caller goes on to check the message and then reports `errors`. Returns InvalidArgument, the
// whole report, when the document cannot be read at all (not valid YAML, empty, its root not a
// map, or yaml-cpp failing); `errors` is then of no further use. Never throws.
absl::Status ReadYaml(std::string_view yaml, google::protobuf::Message& message,
                      YamlErrors& errors);

}  // namespace wirepool::config
