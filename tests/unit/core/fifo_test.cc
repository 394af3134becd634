#include "core/fifo.h"

#include <string>
#include <vector>

#include "gtest/gtest.h"

namespace wirepool::core {
namespace {

std::vector<int> Drain(Fifo<int>& q) {
  std::vector<int> out;
  while (!q.empty()) {
    out.push_back(q.front());
    q.pop_front();
  }
  return out;
}

TEST(FifoTest, KeepsOrderAcrossReuseOfPoppedSlots) {
  Fifo<int> q;
  EXPECT_TRUE(q.empty());
  int next = 0;
  std::vector<int> popped;
  // Interleave pushes and pops so that the vector fills up while its head has moved: the popped
  // slots are reused (compaction) and the order must survive it.
  for (int round = 0; round < 50; ++round) {
    for (int i = 0; i < 3; ++i) {
      q.push_back(next++);
    }
    for (int i = 0; i < 2; ++i) {
      popped.push_back(q.front());
      q.pop_front();
    }
  }
  EXPECT_EQ(q.size(), 50u);
  for (int v : Drain(q)) {
    popped.push_back(v);
  }
  ASSERT_EQ(popped.size(), 150u);
  for (int i = 0; i < 150; ++i) {
    EXPECT_EQ(popped[i], i);
  }
  EXPECT_TRUE(q.empty());
  EXPECT_EQ(q.size(), 0u);
}

TEST(FifoTest, FrontIsMutableAndClearEmpties) {
  Fifo<std::string> q;
  q.push_back("a");
  q.push_back("b");
  q.front() += "!";
  EXPECT_EQ(q.front(), "a!");
  q.clear();
  EXPECT_TRUE(q.empty());
  q.push_back("c");
  EXPECT_EQ(q.front(), "c");
  EXPECT_EQ(q.size(), 1u);
}

TEST(FifoTest, IteratesFromTheHeadAndErasesFromTheMiddle) {
  Fifo<int> q;
  for (int i = 0; i < 6; ++i) {
    q.push_back(i);
  }
  q.pop_front();
  q.pop_front();  // 2 3 4 5, with the head moved
  EXPECT_EQ(std::vector<int>(q.begin(), q.end()), (std::vector<int>{2, 3, 4, 5}));
  EXPECT_EQ(std::vector<int>(q.rbegin(), q.rend()), (std::vector<int>{5, 4, 3, 2}));
  auto it = q.erase(q.begin() + 1);  // 3
  EXPECT_EQ(*it, 4);
  EXPECT_EQ(q.back(), 5);
  q.emplace_back(6) += 1;  // emplace_back gives the new item
  EXPECT_EQ(Drain(q), (std::vector<int>{2, 4, 5, 7}));
  // Erasing the last item left empties the queue for reuse.
  q.push_back(8);
  auto after = q.erase(q.begin());
  EXPECT_TRUE(after == q.end());
  EXPECT_TRUE(q.empty());
  q.push_back(9);
  EXPECT_EQ(Drain(q), (std::vector<int>{9}));
}

TEST(FifoTest, PushAndPopInTurnAllocateNothingOnceGrown) {
  Fifo<std::vector<int>> q;
  q.push_back({0});
  q.push_back({1});  // grown to two slots
  q.pop_front();
  const void* storage = &q.front();
  for (int i = 2; i < 1000; ++i) {
    q.push_back({i});
    q.pop_front();
    // The popped slot is reused in place: the same storage each time, no reallocation.
    ASSERT_EQ(&q.front(), storage) << i;
    ASSERT_EQ(q.front(), std::vector<int>{i});
  }
}

}  // namespace
}  // namespace wirepool::core
