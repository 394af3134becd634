#include "proxy/startup_table.h"

#include <memory>

#include "gtest/gtest.h"

namespace wirepool::proxy {
namespace {

StartupTable::Ptr Startup(std::string app, std::string user = "app_user") {
  codec::StartupInfo info;
  info.user = std::move(user);
  info.database = "db";
  info.pool_key = "db";
  info.params = {{"application_name", std::move(app)}};
  return std::make_shared<const codec::StartupInfo>(std::move(info));
}

TEST(StartupTableTest, EqualPacketsShareOneCopy) {
  StartupTable table;
  StartupTable::Ptr first = table.Intern(Startup("web"));
  StartupTable::Ptr second = table.Intern(Startup("web"));
  EXPECT_EQ(first.get(), second.get());
  EXPECT_EQ(table.size(), 1u);
}

TEST(StartupTableTest, PacketsThatDifferInAnyPartStayApart) {
  StartupTable table;
  StartupTable::Ptr web = table.Intern(Startup("web"));
  StartupTable::Ptr batch = table.Intern(Startup("batch"));
  StartupTable::Ptr other_user = table.Intern(Startup("web", "other"));
  auto with_options = std::make_shared<codec::StartupInfo>(*Startup("web"));
  with_options->login_options = {{"client_flags", "1"}};
  StartupTable::Ptr optioned = table.Intern(with_options);
  EXPECT_NE(web.get(), batch.get());
  EXPECT_NE(web.get(), other_user.get());
  EXPECT_NE(web.get(), optioned.get());
  EXPECT_EQ(batch->params[0].second, "batch");
  EXPECT_EQ(table.size(), 4u);
}

TEST(StartupTableTest, SweepDropsOnlyCopiesNoClientHolds) {
  StartupTable table;
  StartupTable::Ptr held = table.Intern(Startup("held"));
  table.Intern(Startup("gone"));  // its client left at once
  EXPECT_EQ(table.size(), 2u);
  table.Sweep();
  EXPECT_EQ(table.size(), 1u);
  // The held copy is still the one handed out.
  EXPECT_EQ(table.Intern(Startup("held")).get(), held.get());
  held.reset();
  table.Sweep();
  EXPECT_EQ(table.size(), 0u);
}

}  // namespace
}  // namespace wirepool::proxy
