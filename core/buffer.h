#pragma once

// Reference-counted byte blocks. Bytes read from one socket are forwarded to the other by handing
// the write queue a reference to the block they sit in, never by copying them. Blocks of the
// default size are recycled through a per-thread free list, so the hot path allocates nothing.

#include <cstddef>
#include <cstdint>
#include <span>
#include <string_view>

namespace wirepool::core {

class Block {
 public:
  static constexpr size_t kDefaultSize = 16 * 1024;

  // A block of at least `capacity` bytes with a reference count of one.
  static Block* New(size_t capacity = kDefaultSize);
  void Ref() { ++refs_; }
  void Unref();

  uint8_t* data() { return data_; }
  size_t capacity() const { return capacity_; }
  bool shared() const { return refs_ > 1; }

  // Blocks parked in this thread's free list (for tests and memory stats).
  static size_t FreeListSize();

 private:
  Block(uint8_t* data, size_t capacity) : data_(data), capacity_(capacity) {}
  uint8_t* data_;
  size_t capacity_;
  uint32_t refs_ = 1;
};

// A counted reference to a span of bytes inside a block.
class Slice {
 public:
  Slice() = default;
  Slice(Block* block, const uint8_t* data, size_t len);  // takes a new reference
  // A slice over a fresh block holding a copy of `bytes` (for what the proxy itself says).
  static Slice Copy(std::string_view bytes);
  Slice(const Slice& other);
  Slice& operator=(const Slice& other);
  Slice(Slice&& other) noexcept;
  Slice& operator=(Slice&& other) noexcept;
  ~Slice();

  const uint8_t* data() const { return data_; }
  size_t size() const { return len_; }
  Block* block() const { return block_; }
  // Grows this slice by `len` bytes if they follow it directly in the same block.
  bool TryExtend(const Block* block, const uint8_t* data, size_t len);
  // Copies `bytes` in after this slice if its block is this slice's alone and has room: what the
  // proxy says in a row (a login's dozen messages) then shares one block and one iovec.
  bool TryAppend(std::string_view bytes);

 private:
  void Reset();
  Block* block_ = nullptr;
  const uint8_t* data_ = nullptr;
  size_t len_ = 0;
};

// The unconsumed bytes read from a socket, kept contiguous in one block.
class InputBuffer {
 public:
  InputBuffer() = default;
  InputBuffer(const InputBuffer&) = delete;
  InputBuffer& operator=(const InputBuffer&) = delete;
  ~InputBuffer();

  std::span<const uint8_t> view() const { return {start_, size()}; }
  size_t size() const { return static_cast<size_t>(end_ - start_); }
  bool empty() const { return start_ == end_; }

  // Where the next read may land: at least `min_free` bytes (re-blocking if needed).
  std::span<uint8_t> WritableTail(size_t min_free = 4096);
  void Commit(size_t n) { end_ += n; }
  // Makes sure `total` contiguous unconsumed bytes fit, moving them to a bigger block if needed.
  void Reserve(size_t total);
  void Consume(size_t n) { start_ += n; }
  // A counted reference to the first `n` unconsumed bytes.
  Slice Front(size_t n) const { return Slice(block_, start_, n); }
  // Returns the block to the pool when nothing is left to read (idle connections hold no memory).
  void ReleaseIfEmpty();

 private:
  void MoveTo(size_t capacity);
  Block* block_ = nullptr;
  uint8_t* start_ = nullptr;
  uint8_t* end_ = nullptr;
};

}  // namespace wirepool::core
