# FindLibev
# ---------
# Finds libev, which ships no CMake or pkg-config files of its own.
#
# For the systems evcxx builds on: Linux, the BSDs and macOS.
# Honours Libev_ROOT (CMake's <Package>_ROOT), CMAKE_PREFIX_PATH and the usual system paths.
#
# Imported target:
#   Libev::Libev      the library with its include directory
# Result variables:
#   Libev_FOUND, Libev_INCLUDE_DIRS, Libev_LIBRARIES, Libev_VERSION
# Cache variables:
#   Libev_INCLUDE_DIR, Libev_LIBRARY

find_path(Libev_INCLUDE_DIR NAMES ev.h PATH_SUFFIXES libev)
find_library(Libev_LIBRARY NAMES ev libev)

# A path given by hand (-DLibev_INCLUDE_DIR=..., -DLibev_LIBRARY=...) that does not hold libev
# fails here, at configure time, instead of as a confusing compile or link error later.
set(_libev_bad_path "")
if(Libev_INCLUDE_DIR AND NOT EXISTS "${Libev_INCLUDE_DIR}/ev.h")
  string(APPEND _libev_bad_path "Libev_INCLUDE_DIR=${Libev_INCLUDE_DIR} has no ev.h. ")
  set(Libev_INCLUDE_DIR "Libev_INCLUDE_DIR-NOTFOUND")
endif()
if(Libev_LIBRARY AND NOT EXISTS "${Libev_LIBRARY}")
  string(APPEND _libev_bad_path "Libev_LIBRARY=${Libev_LIBRARY} does not exist. ")
  set(Libev_LIBRARY "Libev_LIBRARY-NOTFOUND")
endif()

if(Libev_INCLUDE_DIR AND EXISTS "${Libev_INCLUDE_DIR}/ev.h")
  file(STRINGS "${Libev_INCLUDE_DIR}/ev.h" _libev_major REGEX "^#define EV_VERSION_MAJOR [0-9]+")
  file(STRINGS "${Libev_INCLUDE_DIR}/ev.h" _libev_minor REGEX "^#define EV_VERSION_MINOR [0-9]+")
  string(REGEX REPLACE ".* ([0-9]+)$" "\\1" _libev_major "${_libev_major}")
  string(REGEX REPLACE ".* ([0-9]+)$" "\\1" _libev_minor "${_libev_minor}")
  set(Libev_VERSION "${_libev_major}.${_libev_minor}")
  unset(_libev_major)
  unset(_libev_minor)
endif()

include(FindPackageHandleStandardArgs)
find_package_handle_standard_args(Libev
  REQUIRED_VARS Libev_LIBRARY Libev_INCLUDE_DIR
  VERSION_VAR Libev_VERSION
  REASON_FAILURE_MESSAGE
    "${_libev_bad_path}Install libev's development files (Debian/Ubuntu: sudo apt-get install libev-dev, Fedora: sudo dnf install libev-devel, FreeBSD: pkg install libev, OpenBSD: pkg_add libev, NetBSD: pkgin install libev, macOS: brew install libev), or point Libev_ROOT at a libev prefix.")

if(Libev_FOUND)
  set(Libev_INCLUDE_DIRS "${Libev_INCLUDE_DIR}")
  set(Libev_LIBRARIES "${Libev_LIBRARY}")
  if(NOT TARGET Libev::Libev)
    add_library(Libev::Libev UNKNOWN IMPORTED)
    set_target_properties(Libev::Libev PROPERTIES
      IMPORTED_LOCATION "${Libev_LIBRARY}"
      INTERFACE_INCLUDE_DIRECTORIES "${Libev_INCLUDE_DIR}")
  endif()
endif()

unset(_libev_bad_path)
mark_as_advanced(Libev_INCLUDE_DIR Libev_LIBRARY)
