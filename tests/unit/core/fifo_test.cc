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

}  // namespace
}  // namespace wirepool::core
