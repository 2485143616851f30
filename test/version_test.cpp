// The version in <evcxx/version.hpp> is the project's, and every name lives in the versioned
// inline namespace.
#include <gtest/gtest.h>

#include <string>
#include <type_traits>
#include <typeinfo>

#include <evcxx/evcxx.hpp>

#define EVCXX_STRINGIFY_(x) #x
#define EVCXX_STRINGIFY(x) EVCXX_STRINGIFY_(x)

static_assert(std::is_same_v<evcxx::Loop, evcxx::EVCXX_ABI_NAMESPACE::Loop>);
static_assert(
    std::is_same_v<evcxx::detail::WatcherLink, evcxx::EVCXX_ABI_NAMESPACE::detail::WatcherLink>);
static_assert(EVCXX_VERSION ==
              EVCXX_VERSION_MAJOR * 10000 + EVCXX_VERSION_MINOR * 100 + EVCXX_VERSION_PATCH);

TEST(Version, HeaderVersionIsTheOneCMakeRead) {
  const std::string header = std::to_string(EVCXX_VERSION_MAJOR) + "." +
                             std::to_string(EVCXX_VERSION_MINOR) + "." +
                             std::to_string(EVCXX_VERSION_PATCH);
  EXPECT_EQ(header, EVCXX_PROJECT_VERSION);
}

TEST(Version, TheAbiNamespaceFollowsMajorAndMinor) {
  const std::string expected =
      "v" + std::to_string(EVCXX_VERSION_MAJOR) + "_" + std::to_string(EVCXX_VERSION_MINOR);
  EXPECT_EQ(EVCXX_STRINGIFY(EVCXX_ABI_NAMESPACE), expected);
  // The linker sees it: the mangled name of every type carries the namespace.
  const std::string mangled = typeid(evcxx::Timer).name();
  EXPECT_NE(mangled.find(std::to_string(expected.size()) + expected), std::string::npos) << mangled;
}
