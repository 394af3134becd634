#include "core/buffer.h"

#include <algorithm>
#include <cstdint>
#include <cstring>
#include <string>
#include <string_view>
#include <utility>

#include "gtest/gtest.h"

namespace wirepool::core {
namespace {

std::string_view Text(const Slice& s) {
  return std::string_view(reinterpret_cast<const char*>(s.data()), s.size());
}

std::string_view Text(std::span<const uint8_t> s) {
  return std::string_view(reinterpret_cast<const char*>(s.data()), s.size());
}

// Appends `bytes` to `in` the way a socket read does.
void Write(InputBuffer& in, std::string_view bytes, size_t min_free = 1) {
  std::span<uint8_t> tail = in.WritableTail(std::max(min_free, bytes.size()));
  ASSERT_GE(tail.size(), bytes.size());
  std::memcpy(tail.data(), bytes.data(), bytes.size());
  in.Commit(bytes.size());
}

TEST(BlockTest, DefaultBlocksAreRecycledThroughTheFreeList) {
  Block* a = Block::New();
  EXPECT_GE(a->capacity(), Block::kDefaultSize);
  EXPECT_FALSE(a->shared());
  size_t before = Block::FreeListSize();
  a->Unref();
  EXPECT_EQ(Block::FreeListSize(), before + 1);
  Block* b = Block::New(100);  // small requests get a default block, from the free list
  EXPECT_EQ(b, a);
  EXPECT_EQ(b->capacity(), Block::kDefaultSize);
  EXPECT_FALSE(b->shared());  // the count starts again at one
  EXPECT_EQ(Block::FreeListSize(), before);
  b->Unref();
}

TEST(BlockTest, LargeBlocksGoBackToTheAllocator) {
  Block* big = Block::New(3 * Block::kDefaultSize);
  EXPECT_GE(big->capacity(), 3 * Block::kDefaultSize);
  size_t before = Block::FreeListSize();
  big->Unref();
  EXPECT_EQ(Block::FreeListSize(), before);
}

TEST(BlockTest, RefAndUnrefCount) {
  Block* b = Block::New();
  b->Ref();
  EXPECT_TRUE(b->shared());
  size_t before = Block::FreeListSize();
  b->Unref();
  EXPECT_FALSE(b->shared());
  EXPECT_EQ(Block::FreeListSize(), before);  // still alive
  b->Unref();
  EXPECT_EQ(Block::FreeListSize(), before + 1);
}

TEST(SliceTest, DefaultIsEmpty) {
  Slice s;
  EXPECT_EQ(s.size(), 0u);
  EXPECT_EQ(s.data(), nullptr);
  EXPECT_EQ(s.block(), nullptr);
}

TEST(SliceTest, CopyHoldsItsOwnBlock) {
  size_t before = Block::FreeListSize();
  {
    Slice s = Slice::Copy("hello");
    EXPECT_EQ(Text(s), "hello");
    ASSERT_NE(s.block(), nullptr);
    EXPECT_FALSE(s.block()->shared());  // the slice holds the only reference
  }
  // The block went back to the free list (it may have come from there too).
  EXPECT_GE(Block::FreeListSize(), before);
  Slice big = Slice::Copy(std::string(3 * Block::kDefaultSize, 'x'));
  EXPECT_EQ(big.size(), 3 * Block::kDefaultSize);
  EXPECT_EQ(big.data()[big.size() - 1], 'x');
}

TEST(SliceTest, CopiesAndMovesCountReferences) {
  Block* b = Block::New();
  std::memcpy(b->data(), "abcdef", 6);
  size_t free_before = Block::FreeListSize();
  {
    Slice s1(b, b->data(), 3);
    EXPECT_TRUE(b->shared());  // ours + s1
    b->Unref();                // s1 now holds the only reference
    EXPECT_FALSE(b->shared());

    Slice s2 = s1;  // copy: two references
    EXPECT_TRUE(b->shared());
    EXPECT_EQ(Text(s2), "abc");

    Slice s3 = std::move(s2);  // move: still two
    EXPECT_EQ(s2.block(), nullptr);
    EXPECT_EQ(s2.size(), 0u);
    EXPECT_EQ(Text(s3), "abc");

    Slice s4;
    s4 = s3;       // copy-assign: three
    s3 = Slice();  // reset: two
    EXPECT_TRUE(b->shared());
    s1 = std::move(s4);  // move-assign over a slice of the same block: one
    EXPECT_FALSE(b->shared());
    Slice& same = s1;
    s1 = same;  // self-assignment keeps it
    EXPECT_EQ(Text(s1), "abc");
    EXPECT_EQ(Block::FreeListSize(), free_before);
  }
  EXPECT_EQ(Block::FreeListSize(), free_before + 1);  // last reference gone
}

TEST(SliceTest, TryExtendOnlyGrowsOverAdjacentBytesOfTheSameBlock) {
  Block* b = Block::New();
  std::memcpy(b->data(), "abcdef", 6);
  Slice s(b, b->data(), 2);
  EXPECT_FALSE(s.TryExtend(b, b->data() + 3, 1));  // gap
  EXPECT_TRUE(s.TryExtend(b, b->data() + 2, 2));
  EXPECT_EQ(Text(s), "abcd");
  EXPECT_TRUE(s.TryExtend(b, b->data() + 4, 2));
  EXPECT_EQ(Text(s), "abcdef");

  Block* other = Block::New();
  EXPECT_FALSE(s.TryExtend(other, b->data() + 6, 1));  // right address, other block
  Slice empty;
  EXPECT_FALSE(empty.TryExtend(b, b->data(), 1));  // an empty slice holds no block
  other->Unref();
  b->Unref();
}

TEST(SliceTest, TryAppendCopiesInOnlyIntoABlockOfItsOwnWithRoom) {
  Slice s = Slice::Copy("ab");
  EXPECT_TRUE(s.TryAppend("cd"));
  EXPECT_TRUE(s.TryAppend(""));
  EXPECT_EQ(Text(s), "abcd");

  // Another reference (a write in flight, an input buffer) may own the bytes after the slice.
  Slice other = s;
  EXPECT_FALSE(s.TryAppend("e"));
  other = Slice();
  EXPECT_TRUE(s.TryAppend("e"));
  EXPECT_EQ(Text(s), "abcde");

  // Exactly to the end of the block, and not a byte over.
  const size_t room = s.block()->capacity() - s.size();
  EXPECT_FALSE(s.TryAppend(std::string(room + 1, 'x')));
  EXPECT_EQ(Text(s), "abcde");
  EXPECT_TRUE(s.TryAppend(std::string(room, 'y')));
  EXPECT_FALSE(s.TryAppend("z"));
  EXPECT_EQ(s.size(), s.block()->capacity());

  Slice empty;
  EXPECT_FALSE(empty.TryAppend("a"));  // no block to copy into
}

TEST(InputBufferTest, StartsEmptyWithoutABlock) {
  InputBuffer in;
  EXPECT_TRUE(in.empty());
  EXPECT_EQ(in.size(), 0u);
  EXPECT_EQ(in.view().size(), 0u);
  in.ReleaseIfEmpty();  // harmless without a block
  EXPECT_TRUE(in.empty());
}

TEST(InputBufferTest, CommitAndConsume) {
  InputBuffer in;
  std::span<uint8_t> tail = in.WritableTail(10);
  EXPECT_GE(tail.size(), 10u);
  std::memcpy(tail.data(), "hello world", 11);
  in.Commit(11);
  EXPECT_EQ(Text(in.view()), "hello world");
  in.Consume(6);
  EXPECT_EQ(Text(in.view()), "world");
  Write(in, "!!");
  EXPECT_EQ(Text(in.view()), "world!!");  // appended after the unconsumed bytes
  in.Consume(7);
  EXPECT_TRUE(in.empty());
}

TEST(InputBufferTest, FrontIsACountedReference) {
  InputBuffer in;
  Write(in, "abcdef");
  Slice front = in.Front(3);
  EXPECT_EQ(Text(front), "abc");
  EXPECT_TRUE(front.block()->shared());
  in.Consume(6);
  in.ReleaseIfEmpty();  // the buffer lets go; the slice keeps the block alive
  EXPECT_EQ(Text(front), "abc");
  EXPECT_FALSE(front.block()->shared());
}

TEST(InputBufferTest, EmptyUnsharedBlockIsReusedFromTheStart) {
  InputBuffer in;
  Write(in, "first");
  const uint8_t* start = in.view().data();
  in.Consume(5);
  Write(in, "second");
  EXPECT_EQ(in.view().data(), start);  // rewound: no reason to creep along the block
  EXPECT_EQ(Text(in.view()), "second");
}

TEST(InputBufferTest, EmptySharedBlockIsNotOverwritten) {
  InputBuffer in;
  Write(in, "abc");
  Slice queued = in.Front(3);  // e.g. sitting in the peer's write queue
  in.Consume(3);
  Write(in, "xyz");
  EXPECT_EQ(Text(queued), "abc");
  EXPECT_EQ(Text(in.view()), "xyz");
  // The new bytes follow the queued ones, so a forward of them could extend the queued slice.
  Slice next = in.Front(3);
  EXPECT_TRUE(queued.TryExtend(next.block(), next.data(), next.size()));
  EXPECT_EQ(Text(queued), "abcxyz");
}

TEST(InputBufferTest, ReblockingKeepsUnconsumedBytes) {
  InputBuffer in;
  std::string fill(Block::kDefaultSize - 10, 'f');
  Write(in, fill);
  Write(in, "0123456789");  // the block is now full
  in.Consume(fill.size());
  Slice old = in.Front(4);  // a reference into the old block
  const Block* old_block = old.block();
  std::span<uint8_t> tail = in.WritableTail(100);  // needs a new block
  EXPECT_GE(tail.size(), 100u);
  EXPECT_EQ(Text(in.view()), "0123456789");  // moved along
  EXPECT_NE(in.view().data(), old.data());
  EXPECT_NE(in.Front(1).block(), old_block);
  EXPECT_EQ(Text(old), "0123");  // the old block lives on for its slice
  std::memcpy(tail.data(), "ab", 2);
  in.Commit(2);
  EXPECT_EQ(Text(in.view()), "0123456789ab");
}

TEST(InputBufferTest, ReserveMakesRoomForALargeMessage) {
  InputBuffer in;
  Write(in, "header");
  in.Consume(2);
  const size_t total = 3 * Block::kDefaultSize;
  in.Reserve(total);
  EXPECT_EQ(Text(in.view()), "ader");
  std::span<uint8_t> tail = in.WritableTail(1);
  EXPECT_GE(in.size() + tail.size(), total);  // contiguous room for the whole message
  std::memset(tail.data(), 'x', total - in.size());
  in.Commit(total - in.size());
  EXPECT_EQ(in.size(), total);
  EXPECT_EQ(Text(in.view()).substr(0, 5), "aderx");
  EXPECT_EQ(in.view()[total - 1], 'x');
  // Reserve of what already fits changes nothing.
  const uint8_t* data = in.view().data();
  in.Reserve(total);
  EXPECT_EQ(in.view().data(), data);
}

TEST(InputBufferTest, ReserveOnAnEmptyBuffer) {
  InputBuffer in;
  in.Reserve(10);
  std::span<uint8_t> tail = in.WritableTail(10);
  EXPECT_GE(tail.size(), 10u);
  EXPECT_TRUE(in.empty());
}

TEST(InputBufferTest, ReleaseIfEmptyReturnsTheBlockOnlyWhenEmpty) {
  InputBuffer in;
  Write(in, "abc");
  size_t before = Block::FreeListSize();
  in.ReleaseIfEmpty();
  EXPECT_EQ(Block::FreeListSize(), before);  // bytes left: kept
  EXPECT_EQ(Text(in.view()), "abc");
  in.Consume(3);
  in.ReleaseIfEmpty();
  EXPECT_EQ(Block::FreeListSize(), before + 1);
  EXPECT_TRUE(in.empty());
  // And the next read takes a block from the free list again.
  Write(in, "again");
  EXPECT_EQ(Block::FreeListSize(), before);
  EXPECT_EQ(Text(in.view()), "again");
}

TEST(InputBufferTest, DestructorReturnsTheBlock) {
  size_t before;
  {
    InputBuffer in;
    Write(in, "abc");
    before = Block::FreeListSize();
  }
  EXPECT_EQ(Block::FreeListSize(), before + 1);
}

TEST(InputBufferTest, ManyReadsAndConsumesKeepTheStream) {
  // A stream written in odd-sized reads and consumed in other odd sizes reads back in order.
  InputBuffer in;
  std::string written;
  std::string consumed;
  uint32_t x = 12345;
  for (int i = 0; i < 2000; ++i) {
    x = x * 1103515245 + 12345;
    size_t n = 1 + (x >> 16) % 700;
    std::string chunk;
    for (size_t j = 0; j < n; ++j) {
      chunk.push_back(static_cast<char>('a' + (written.size() + j) % 26));
    }
    Write(in, chunk, 1 + (x >> 8) % 5000);
    written += chunk;
    size_t take = std::min(in.size(), static_cast<size_t>((x >> 4) % 800));
    consumed += Text(in.view()).substr(0, take);
    in.Consume(take);
    if (i % 7 == 0) {
      in.ReleaseIfEmpty();
    }
  }
  consumed += Text(in.view());
  EXPECT_EQ(consumed, written);
}

}  // namespace
}  // namespace wirepool::core
