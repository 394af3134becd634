#pragma once

// PostgreSQL's own parse tree of a SQL text, from libpg_query (pg_query_parse, whose JSON it
// holds), flattened for walking: nodes in document order, each knowing where its subtree ends,
// so that a subtree is an index range. Trees can be tens of thousands of levels deep (1+1+...+1),
// so nothing here recurses. Used by classify.cc.
//
// The JSON mirrors PostgreSQL's node structs: a parse node is an object with one member named
// after its type ({"SelectStmt": {...}}); fields typed as one node kind (a RangeVar, an
// IntoClause) are the bare field object; false, 0 and empty fields are left out.

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace wirepool::codec::postgres {

class ParseTree {
 public:
  static constexpr size_t kNone = SIZE_MAX;

  struct Node {
    enum Kind : uint8_t { kObject, kArray, kString, kScalar };
    Kind kind;
    std::string_view key;   // the member name in the enclosing object, as written
    std::string_view text;  // a string's raw contents between the quotes, or a scalar's token
    size_t end;             // one past the last node of the subtree
  };

  // Parses `sql` up to its first NUL byte (the server reads a message's text as a C string).
  // False when the grammar rejects it. Node 0 is then {"version": ..., "stmts": [{"stmt": ...,
  // "stmt_location": ..., "stmt_len": ...}, ...]}.
  bool ParseSql(std::string_view sql);
  // Takes JSON text as it is (ParseSql's second half; for tests). False when it is not JSON.
  bool ParseJson(std::string json);

  size_t size() const { return nodes_.size(); }
  const Node& operator[](size_t i) const { return nodes_[i]; }

  // The first child of container `i` (kNone if `i` is kNone or empty), and the sibling after
  // `child` of `parent` (kNone past the last).
  size_t First(size_t i) const { return i != kNone && nodes_[i].end > i + 1 ? i + 1 : kNone; }
  size_t Next(size_t parent, size_t child) const {
    return nodes_[child].end < nodes_[parent].end ? nodes_[child].end : kNone;
  }
  // Member `key` of object `obj` (kNone if `obj` is kNone, not an object, or has no such member).
  size_t Member(size_t obj, std::string_view key) const;
  // A parse node {"Type": {...}}: its type name, with its fields object in `*fields`; empty if
  // `i` is not one.
  std::string_view Type(size_t i, size_t* fields) const;

  // A scalar's token or a string's raw contents ("" for kNone).
  std::string_view Raw(size_t i) const { return i == kNone ? std::string_view() : nodes_[i].text; }
  // Whether `i` is the JSON literal true.
  bool IsTrue(size_t i) const {
    return i != kNone && nodes_[i].kind == Node::kScalar && nodes_[i].text == "true";
  }
  // A number's value (0 for kNone, as libpg_query leaves out zeros).
  int64_t Int(size_t i) const;
  // A string, unescaped ("" for kNone or a node that is not a string).
  std::string Str(size_t i) const;

 private:
  std::string json_;
  std::vector<Node> nodes_;
};

}  // namespace wirepool::codec::postgres
