#include "proxy/auth_guard.h"

#include "gtest/gtest.h"

namespace wirepool::proxy {
namespace {

const AuthGuardSettings kSettings{absl::Milliseconds(100), 3, absl::Seconds(10)};

TEST(AuthGuardTest, BansAnAddressAtTheLimitForTheBansLength) {
  AuthGuard guard;
  EXPECT_FALSE(guard.RecordFailure("10.0.0.1", 1000, kSettings));
  EXPECT_FALSE(guard.RecordFailure("10.0.0.1", 2000, kSettings));
  EXPECT_EQ(guard.BannedForMs("10.0.0.1", 2000), 0u);
  EXPECT_TRUE(guard.RecordFailure("10.0.0.1", 3000, kSettings));
  EXPECT_EQ(guard.BannedForMs("10.0.0.1", 3000), 10000u);
  EXPECT_EQ(guard.BannedForMs("10.0.0.1", 12999), 1u);
  EXPECT_EQ(guard.BannedForMs("10.0.0.1", 13000), 0u);
  // Other addresses are not touched.
  EXPECT_EQ(guard.BannedForMs("10.0.0.2", 3000), 0u);
}

TEST(AuthGuardTest, AQuietSpellAsLongAsABanStartsTheCountAgain) {
  AuthGuard guard;
  guard.RecordFailure("h", 0, kSettings);
  guard.RecordFailure("h", 1000, kSettings);
  EXPECT_FALSE(guard.RecordFailure("h", 20000, kSettings));  // counts as the first again
  EXPECT_FALSE(guard.RecordFailure("h", 21000, kSettings));
  EXPECT_TRUE(guard.RecordFailure("h", 22000, kSettings));
}

TEST(AuthGuardTest, LimitZeroNeverBans) {
  AuthGuard guard;
  AuthGuardSettings off = kSettings;
  off.limit = 0;
  for (int i = 0; i < 100; ++i) {
    EXPECT_FALSE(guard.RecordFailure("h", static_cast<uint64_t>(i), off));
  }
  EXPECT_EQ(guard.size(), 0u);
}

TEST(AuthGuardTest, PruneForgetsQuietAddressesButKeepsBans) {
  AuthGuard guard;
  guard.RecordFailure("quiet", 0, kSettings);
  for (int i = 0; i < 3; ++i) {
    guard.RecordFailure("banned", 5000, kSettings);
  }
  guard.Prune(11000, kSettings);
  EXPECT_EQ(guard.size(), 1u);
  EXPECT_GT(guard.BannedForMs("banned", 11000), 0u);
  guard.Prune(30000, kSettings);
  EXPECT_EQ(guard.size(), 0u);
}

TEST(AuthGuardTest, TheTableIsBounded) {
  AuthGuard guard;
  for (size_t i = 0; i < AuthGuard::kMaxEntries + 10; ++i) {
    guard.RecordFailure(std::to_string(i), 1000, kSettings);
  }
  EXPECT_EQ(guard.size(), AuthGuard::kMaxEntries);
}

}  // namespace
}  // namespace wirepool::proxy
