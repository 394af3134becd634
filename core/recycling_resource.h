#pragma once

// A memory resource that keeps a few freed blocks for reuse and gives the rest back at once.
//
// A queue that must not move its elements (std::deque) allocates a chunk every few pushes and
// frees one every few pops; over this resource that steady traffic reuses the same chunks and
// allocates nothing. Unlike std::pmr's pool resources, which keep every block until they are
// destroyed, it holds at most kKeep freed blocks: a burst (a client pipelining thousands of
// commands) costs memory while it lasts, not for the life of the connection.

#include <array>
#include <cstddef>
#include <memory_resource>

namespace wirepool::core {

class RecyclingResource final : public std::pmr::memory_resource {
 public:
  static constexpr size_t kKeep = 4;

  explicit RecyclingResource(std::pmr::memory_resource* upstream = std::pmr::new_delete_resource())
      : upstream_(upstream) {}
  RecyclingResource(const RecyclingResource&) = delete;
  RecyclingResource& operator=(const RecyclingResource&) = delete;
  ~RecyclingResource() override {
    for (size_t i = 0; i < kept_; ++i) {
      upstream_->deallocate(free_[i].ptr, free_[i].bytes, free_[i].align);
    }
  }

  // Freed blocks held for reuse now (for tests).
  size_t kept() const { return kept_; }

 private:
  struct Block {
    void* ptr;
    size_t bytes;
    size_t align;
  };

  void* do_allocate(size_t bytes, size_t align) override {
    for (size_t i = 0; i < kept_; ++i) {
      if (free_[i].bytes == bytes && free_[i].align == align) {
        void* p = free_[i].ptr;
        free_[i] = free_[--kept_];
        return p;
      }
    }
    return upstream_->allocate(bytes, align);
  }

  void do_deallocate(void* p, size_t bytes, size_t align) override {
    if (kept_ < kKeep) {
      free_[kept_++] = {p, bytes, align};
      return;
    }
    upstream_->deallocate(p, bytes, align);
  }

  bool do_is_equal(const std::pmr::memory_resource& other) const noexcept override {
    return this == &other;
  }

  std::pmr::memory_resource* upstream_;
  std::array<Block, kKeep> free_{};
  size_t kept_ = 0;
};

}  // namespace wirepool::core
