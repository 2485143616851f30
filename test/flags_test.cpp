// The one flags template behind IoEvents, Backends and LoopFlags: the same set operations on all
// three, each type's own queries, and the mixed spellings users write.

#include <gtest/gtest.h>

#include <evcxx/io.hpp>
#include <evcxx/loop.hpp>

#include <type_traits>

namespace {

using evcxx::Backend;
using evcxx::Backends;
using evcxx::IoEvent;
using evcxx::IoEvents;
using evcxx::LoopFlag;
using evcxx::LoopFlags;

static_assert(
    std::is_base_of_v<evcxx::Flags<IoEvents, IoEvent, EV_READ | EV_WRITE | EV_ERROR>, IoEvents>);
static_assert(std::is_base_of_v<evcxx::Flags<Backends, Backend>, Backends>);
static_assert(std::is_base_of_v<evcxx::Flags<LoopFlags, LoopFlag>, LoopFlags>);
static_assert(sizeof(IoEvents) == sizeof(int) && sizeof(LoopFlags) == sizeof(unsigned));
static_assert(std::is_trivially_copyable_v<IoEvents> && std::is_trivially_copyable_v<LoopFlags>);

// Every set type offers the same operations with the same meaning.
template <class Set, class Enum>
void check_set_operations(Enum a, Enum b) {
  SCOPED_TRACE(typeid(Set).name());
  constexpr Set none;
  EXPECT_TRUE(none.empty());
  EXPECT_EQ(none.raw(), 0u + 0);
  const Set just_a = a;
  const Set both = Set(a) | Set(b);
  EXPECT_FALSE(just_a.empty());
  EXPECT_TRUE(both.contains(a));
  EXPECT_TRUE(both.contains(b));
  EXPECT_TRUE(both.contains(just_a));
  EXPECT_TRUE(both.contains(none));
  EXPECT_FALSE(just_a.contains(b));
  EXPECT_FALSE(just_a.contains(both));
  EXPECT_EQ(both & Set(a), just_a);
  EXPECT_NE(both, just_a);
  EXPECT_TRUE((Set(a) & Set(b)).empty());
  Set built;
  built |= a;
  built |= Set(b);
  EXPECT_EQ(built, both);
  built &= Set(b);
  EXPECT_EQ(built, Set(b));
  EXPECT_EQ(Set::from_raw(both.raw()), both);
  EXPECT_EQ(a | b, both);  // two values of the enumeration make a set
}

TEST(Flags, EveryFlagSetHasTheSameOperations) {
  check_set_operations<IoEvents>(IoEvent::readable, IoEvent::writable);
  check_set_operations<Backends>(Backend::epoll, Backend::poll);
  check_set_operations<LoopFlags>(LoopFlag::noenv, LoopFlag::signalfd);
}

TEST(Flags, IoEventsKeepOnlyReadWriteAndError) {
  constexpr IoEvents fired = IoEvents::from_raw(EV_READ | EV_ERROR | EV_TIMER | EV_CUSTOM);
  static_assert(fired.readable() && !fired.writable() && fired.error());
  EXPECT_EQ(fired.raw(), EV_READ | EV_ERROR);
  EXPECT_FALSE(IoEvents(IoEvent::writable).error());
}

TEST(Flags, LoopFlagsCarryFlagsAndBackendsAndRawBits) {
  constexpr LoopFlags flags = Backend::epoll | LoopFlag::noenv;
  static_assert(flags.contains(LoopFlag::noenv));
  static_assert(flags.backends() == Backends(Backend::epoll));
  EXPECT_EQ(flags.raw(), unsigned{EVBACKEND_EPOLL} | unsigned{EVFLAG_NOENV});
  EXPECT_EQ(LoopFlag::forkcheck | Backend::poll,
            LoopFlags::from_raw(EVFLAG_FORKCHECK | EVBACKEND_POLL));
  EXPECT_EQ((Backend::select | Backend::poll) | LoopFlag::nosigmask,
            LoopFlags::from_raw(EVBACKEND_SELECT | EVBACKEND_POLL | EVFLAG_NOSIGMASK));
  EXPECT_EQ(LoopFlag::notimerfd | Backends(Backend::epoll),
            LoopFlags::from_raw(EVFLAG_NOTIMERFD | EVBACKEND_EPOLL));
  EXPECT_EQ(LoopFlags().raw(), unsigned{EVFLAG_AUTO});             // empty: libev picks the backend
  EXPECT_EQ(LoopFlags::from_raw(0x80000000u).raw(), 0x80000000u);  // the escape hatch keeps all
}

TEST(Flags, TheOldLoopFlagSpellingsStillWork) {
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wdeprecated-declarations"
  EXPECT_EQ(LoopFlags::noenv(), LoopFlags(LoopFlag::noenv));
  EXPECT_EQ(LoopFlags::forkcheck(), LoopFlags(LoopFlag::forkcheck));
  EXPECT_EQ(LoopFlags::noinotify(), LoopFlags(LoopFlag::noinotify));
  EXPECT_EQ(LoopFlags::signalfd(), LoopFlags(LoopFlag::signalfd));
  EXPECT_EQ(LoopFlags::nosigmask(), LoopFlags(LoopFlag::nosigmask));
  EXPECT_EQ(LoopFlags::notimerfd(), LoopFlags(LoopFlag::notimerfd));
#pragma GCC diagnostic pop
  EXPECT_EQ(LoopFlags(LoopFlag::signalfd).raw(), unsigned{EVFLAG_SIGNALFD});
}

}  // namespace
