#include <gtest/gtest.h>

#include <evcxx/loop.hpp>

TEST(Loop, IdleLoopReturnsAtOnce) {
  evcxx::Loop loop;
  EXPECT_FALSE(loop.run());
}
