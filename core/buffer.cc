#include "core/buffer.h"

#include <algorithm>
#include <cstdlib>
#include <cstring>
#include <new>
#include <vector>

namespace wirepool::core {
namespace {

constexpr size_t kMaxFreeBlocks = 1024;

// Blocks of the default size only; larger ones go straight back to the allocator.
struct FreeBlocks {
  std::vector<Block*> blocks;
  ~FreeBlocks() {
    for (Block* b : blocks) {
      ::operator delete(static_cast<void*>(b));
    }
  }
};

std::vector<Block*>& FreeList() {
  thread_local FreeBlocks list;
  return list.blocks;
}

}  // namespace

Block* Block::New(size_t capacity) {
  if (capacity <= kDefaultSize) {
    auto& list = FreeList();
    if (!list.empty()) {
      Block* b = list.back();
      list.pop_back();
      b->refs_ = 1;
      return b;
    }
    capacity = kDefaultSize;
  }
  void* mem = ::operator new(sizeof(Block) + capacity);
  auto* data = static_cast<uint8_t*>(mem) + sizeof(Block);
  return new (mem) Block(data, capacity);
}

void Block::Unref() {
  if (--refs_ != 0) {
    return;
  }
  if (capacity_ == kDefaultSize && FreeList().size() < kMaxFreeBlocks) {
    FreeList().push_back(this);
    return;
  }
  this->~Block();
  ::operator delete(static_cast<void*>(this));
}

size_t Block::FreeListSize() { return FreeList().size(); }

Slice::Slice(Block* block, const uint8_t* data, size_t len)
    : block_(block), data_(data), len_(len) {
  if (block_ != nullptr) {
    block_->Ref();
  }
}

Slice Slice::Copy(std::string_view bytes) {
  Block* b = Block::New(bytes.size());
  std::memcpy(b->data(), bytes.data(), bytes.size());
  Slice s(b, b->data(), bytes.size());
  b->Unref();  // the slice holds the only reference now
  return s;
}

Slice::Slice(const Slice& other) : Slice(other.block_, other.data_, other.len_) {}

Slice& Slice::operator=(const Slice& other) {
  if (this != &other) {
    Reset();
    block_ = other.block_;
    data_ = other.data_;
    len_ = other.len_;
    if (block_ != nullptr) {
      block_->Ref();
    }
  }
  return *this;
}

Slice::Slice(Slice&& other) noexcept : block_(other.block_), data_(other.data_), len_(other.len_) {
  other.block_ = nullptr;
  other.data_ = nullptr;
  other.len_ = 0;
}

Slice& Slice::operator=(Slice&& other) noexcept {
  if (this != &other) {
    Reset();
    block_ = other.block_;
    data_ = other.data_;
    len_ = other.len_;
    other.block_ = nullptr;
    other.data_ = nullptr;
    other.len_ = 0;
  }
  return *this;
}

Slice::~Slice() { Reset(); }

void Slice::Reset() {
  if (block_ != nullptr) {
    block_->Unref();
  }
  block_ = nullptr;
  data_ = nullptr;
  len_ = 0;
}

bool Slice::TryExtend(const Block* block, const uint8_t* data, size_t len) {
  if (block_ == nullptr || block != block_ || data != data_ + len_) {
    return false;
  }
  len_ += len;
  return true;
}

bool Slice::TryAppend(std::string_view bytes) {
  if (block_ == nullptr || block_->shared()) {
    return false;
  }
  // No other reference: the bytes after this slice are nobody's.
  auto* end = const_cast<uint8_t*>(data_) + len_;
  if (bytes.size() > static_cast<size_t>(block_->data() + block_->capacity() - end)) {
    return false;
  }
  std::memcpy(end, bytes.data(), bytes.size());
  len_ += bytes.size();
  return true;
}

InputBuffer::~InputBuffer() {
  if (block_ != nullptr) {
    block_->Unref();
  }
}

std::span<uint8_t> InputBuffer::WritableTail(size_t min_free) {
  if (block_ == nullptr) {
    block_ = Block::New(std::max(min_free, Block::kDefaultSize));
    start_ = end_ = block_->data();
  }
  if (empty() && !block_->shared()) {
    start_ = end_ = block_->data();
  }
  size_t free = static_cast<size_t>(block_->data() + block_->capacity() - end_);
  if (free < min_free) {
    // Unconsumed bytes are few here (the codec took everything it could decide on), so moving
    // them to a fresh block is cheap; older regions may still be referenced by write queues.
    MoveTo(std::max(size() + min_free, Block::kDefaultSize));
  }
  return {end_, static_cast<size_t>(block_->data() + block_->capacity() - end_)};
}

void InputBuffer::Reserve(size_t total) {
  if (block_ != nullptr &&
      static_cast<size_t>(block_->data() + block_->capacity() - start_) >= total) {
    return;
  }
  MoveTo(std::max(total, Block::kDefaultSize));
}

void InputBuffer::ReleaseIfEmpty() {
  if (block_ != nullptr && empty()) {
    block_->Unref();
    block_ = nullptr;
    start_ = end_ = nullptr;
  }
}

void InputBuffer::MoveTo(size_t capacity) {
  size_t n = size();
  Block* fresh = Block::New(capacity);
  if (n > 0) {
    std::memcpy(fresh->data(), start_, n);
  }
  if (block_ != nullptr) {
    block_->Unref();
  }
  block_ = fresh;
  start_ = fresh->data();
  end_ = start_ + n;
}

}  // namespace wirepool::core
