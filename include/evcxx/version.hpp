#pragma once

// evcxx's version: the one place it is written (CMakeLists.txt reads it from here).
#define EVCXX_VERSION_MAJOR 0
#define EVCXX_VERSION_MINOR 1
#define EVCXX_VERSION_PATCH 0
// MAJOR * 10000 + MINOR * 100 + PATCH, for #if.
#define EVCXX_VERSION \
  (EVCXX_VERSION_MAJOR * 10000 + EVCXX_VERSION_MINOR * 100 + EVCXX_VERSION_PATCH)

// The inline namespace that versions the ABI: evcxx::v<MAJOR>_<MINOR>, changing together with the
// shared library's SONAME (libevcxx.so.<MAJOR>.<MINOR>). Code names evcxx::Loop; the linker sees
// evcxx::v0_1::Loop, so two incompatible versions in one program fail to link instead of mixing.
#define EVCXX_ABI_NAME_(major, minor) v##major##_##minor
#define EVCXX_ABI_NAME(major, minor) EVCXX_ABI_NAME_(major, minor)
#define EVCXX_ABI_NAMESPACE EVCXX_ABI_NAME(EVCXX_VERSION_MAJOR, EVCXX_VERSION_MINOR)
