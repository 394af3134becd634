#include "core/recycling_resource.h"

#include <array>
#include <deque>
#include <memory_resource>
#include <vector>

#include "gtest/gtest.h"

namespace wirepool::core {
namespace {

TEST(RecyclingResourceTest, ReusesAFreedBlockOfTheSameSizeAndAlignment) {
  RecyclingResource r;
  void* a = r.allocate(512, 8);
  r.deallocate(a, 512, 8);
  EXPECT_EQ(r.kept(), 1u);
  void* other_size = r.allocate(256, 8);
  EXPECT_EQ(r.kept(), 1u);  // not the 512-byte block
  EXPECT_EQ(r.allocate(512, 8), a);
  EXPECT_EQ(r.kept(), 0u);
  r.deallocate(a, 512, 8);
  r.deallocate(other_size, 256, 8);
}

TEST(RecyclingResourceTest, KeepsAtMostKKeepBlocksAfterABurst) {
  RecyclingResource r;
  std::vector<void*> blocks;
  for (int i = 0; i < 100; ++i) {
    blocks.push_back(r.allocate(512, 8));
  }
  for (void* b : blocks) {
    r.deallocate(b, 512, 8);
  }
  EXPECT_EQ(r.kept(), RecyclingResource::kKeep);
}

// Counts what reaches the allocator behind the resource.
class CountingResource final : public std::pmr::memory_resource {
 public:
  int allocations = 0;
  int live = 0;

 private:
  void* do_allocate(size_t bytes, size_t align) override {
    ++allocations;
    ++live;
    return std::pmr::new_delete_resource()->allocate(bytes, align);
  }
  void do_deallocate(void* p, size_t bytes, size_t align) override {
    --live;
    std::pmr::new_delete_resource()->deallocate(p, bytes, align);
  }
  bool do_is_equal(const std::pmr::memory_resource& other) const noexcept override {
    return this == &other;
  }
};

TEST(RecyclingResourceTest, AQueueThroughItAllocatesNothingOnceWarm) {
  CountingResource upstream;
  {
    RecyclingResource r(&upstream);
    std::pmr::deque<std::array<char, 160>> q(&r);  // three per 512-byte chunk
    auto churn = [&q](int n) {
      for (int i = 0; i < n; ++i) {
        q.push_back({});
        if (q.size() > 2) {
          q.pop_front();
        }
      }
    };
    churn(100);
    const int warm = upstream.allocations;
    churn(10000);
    EXPECT_EQ(upstream.allocations, warm);

    // A burst, then back to a short queue: only kKeep freed chunks stay.
    for (int i = 0; i < 3000; ++i) {
      q.push_back({});
    }
    while (q.size() > 2) {
      q.pop_front();
    }
    EXPECT_EQ(r.kept(), RecyclingResource::kKeep);
  }
  EXPECT_EQ(upstream.live, 0);  // everything kept went back at destruction
}

}  // namespace
}  // namespace wirepool::core
