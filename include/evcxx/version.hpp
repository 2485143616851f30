#pragma once

/// @file
/// evcxx's version: the one place it is written (CMakeLists.txt reads it from here).

/// The major version.
#define EVCXX_VERSION_MAJOR 0
/// The minor version.
#define EVCXX_VERSION_MINOR 1
/// The patch version.
#define EVCXX_VERSION_PATCH 0
/// MAJOR * 10000 + MINOR * 100 + PATCH, for `#if`.
#define EVCXX_VERSION \
  (EVCXX_VERSION_MAJOR * 10000 + EVCXX_VERSION_MINOR * 100 + EVCXX_VERSION_PATCH)

/// Pastes the ABI namespace's name, v followed by major, `_` and minor (EVCXX_ABI_NAME expands
/// its arguments first).
#define EVCXX_ABI_NAME_(major, minor) v##major##_##minor
/// The ABI namespace's name for a version: `v0_1` for 0.1.
#define EVCXX_ABI_NAME(major, minor) EVCXX_ABI_NAME_(major, minor)
/// The inline namespace that versions the ABI: evcxx::vMAJOR_MINOR, changing together with the
/// shared library's SONAME (libevcxx.so.MAJOR.MINOR). Code names evcxx::Loop; the linker sees
/// `evcxx::v0_1::Loop`, so two incompatible versions in one program fail to link instead of
/// mixing.
#define EVCXX_ABI_NAMESPACE EVCXX_ABI_NAME(EVCXX_VERSION_MAJOR, EVCXX_VERSION_MINOR)
