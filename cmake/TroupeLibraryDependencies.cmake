# The third-party dependencies of troupe's libraries, as imported targets. One copy, used twice:
# by the build (included from TroupeDependencies.cmake) and by the installed troupeConfig.cmake,
# which recreates the targets that the exported troupe:: targets link to. In a package config
# (TROUPE_FIND_AS_DEPENDENCY set) a missing dependency makes find_package(troupe) fail softly
# through find_dependency; in the build it is a fatal error.
# Everything comes from Debian 12 packages (scripts/install-deps.sh).
if(TROUPE_FIND_AS_DEPENDENCY)
  include(CMakeFindDependencyMacro)
  macro(_troupe_find_package)
    find_dependency(${ARGN})
  endmacro()
else()
  macro(_troupe_find_package)
    find_package(${ARGN} REQUIRED)
  endmacro()
endif()

# Fails the enclosing find_package(troupe) (or the build) with a message.
macro(_troupe_dependency_missing what)
  if(TROUPE_FIND_AS_DEPENDENCY)
    set(troupe_FOUND FALSE)
    set(troupe_NOT_FOUND_MESSAGE "${what} not found")
    return()
  else()
    message(FATAL_ERROR "${what} not found: run scripts/install-deps.sh")
  endif()
endmacro()

_troupe_find_package(Threads)
_troupe_find_package(Boost 1.81 COMPONENTS json)
_troupe_find_package(fmt)
_troupe_find_package(spdlog)
# yaml-cpp (libyaml-cpp-dev) reads YAML config files (config/config_file.cpp).
_troupe_find_package(yaml-cpp)
_troupe_find_package(PkgConfig)

foreach(_troupe_pc PCRE2:libpcre2-8 HWY:libhwy SENTENCEPIECE:sentencepiece XXHASH:libxxhash)
  string(REPLACE ":" ";" _troupe_pc "${_troupe_pc}")
  list(GET _troupe_pc 0 _troupe_prefix)
  list(GET _troupe_pc 1 _troupe_module)
  if(NOT TARGET PkgConfig::${_troupe_prefix})
    pkg_check_modules(${_troupe_prefix} QUIET IMPORTED_TARGET ${_troupe_module})
    if(NOT ${_troupe_prefix}_FOUND)
      _troupe_dependency_missing("${_troupe_module} (pkg-config)")
    endif()
  endif()
endforeach()

# OpenBLAS: Debian's pthreads build; we call it single-threaded from our own pool.
if(NOT TARGET troupe::openblas)
  find_path(OPENBLAS_INCLUDE_DIR cblas.h PATHS /usr/include/x86_64-linux-gnu/openblas-pthread /usr/include/openblas /usr/include)
  find_library(OPENBLAS_LIBRARY NAMES openblas PATHS /usr/lib/x86_64-linux-gnu/openblas-pthread)
  if(NOT OPENBLAS_INCLUDE_DIR OR NOT OPENBLAS_LIBRARY)
    _troupe_dependency_missing("OpenBLAS")
  endif()
  add_library(troupe::openblas INTERFACE IMPORTED)
  target_include_directories(troupe::openblas INTERFACE ${OPENBLAS_INCLUDE_DIR})
  target_link_libraries(troupe::openblas INTERFACE ${OPENBLAS_LIBRARY})
endif()

# CAF 0.17.6 has no CMake package on Debian: define CAF::core, CAF::io and CAF::openssl by hand.
# TROUPE_CAF_ROOT: a prefix with another build of it, searched first (the TSan build uses the one
# scripts/build-caf-tsan.sh makes: Debian's is not instrumented, README "Sanitizers").
set(TROUPE_CAF_ROOT "" CACHE PATH "Prefix of a CAF 0.17 build to use instead of the system one")
if(NOT TARGET CAF::core)
  set(_troupe_caf_hints)
  if(TROUPE_CAF_ROOT)
    if(NOT EXISTS ${TROUPE_CAF_ROOT}/include/caf/all.hpp)
      message(FATAL_ERROR "TROUPE_CAF_ROOT=${TROUPE_CAF_ROOT} has no include/caf/all.hpp "
        "(for the TSan build run scripts/build-caf-tsan.sh first)")
    endif()
    # NO_DEFAULT_PATH: headers and libraries must come from that prefix together, never one of
    # them from /usr.
    set(_troupe_caf_hints PATHS ${TROUPE_CAF_ROOT} PATH_SUFFIXES lib include NO_DEFAULT_PATH)
  endif()
  find_path(CAF_INCLUDE_DIR caf/all.hpp ${_troupe_caf_hints})
  find_library(CAF_CORE_LIBRARY caf_core ${_troupe_caf_hints})
  find_library(CAF_IO_LIBRARY caf_io ${_troupe_caf_hints})
  find_library(CAF_OPENSSL_LIBRARY caf_openssl ${_troupe_caf_hints})
  if(NOT CAF_INCLUDE_DIR OR NOT CAF_CORE_LIBRARY OR NOT CAF_IO_LIBRARY OR NOT CAF_OPENSSL_LIBRARY)
    _troupe_dependency_missing("CAF 0.17")
  endif()
  add_library(CAF::core UNKNOWN IMPORTED)
  set_target_properties(CAF::core PROPERTIES IMPORTED_LOCATION ${CAF_CORE_LIBRARY}
    INTERFACE_INCLUDE_DIRECTORIES ${CAF_INCLUDE_DIR} INTERFACE_LINK_LIBRARIES Threads::Threads)
  add_library(CAF::io UNKNOWN IMPORTED)
  set_target_properties(CAF::io PROPERTIES IMPORTED_LOCATION ${CAF_IO_LIBRARY}
    INTERFACE_LINK_LIBRARIES CAF::core)
  add_library(CAF::openssl UNKNOWN IMPORTED)
  set_target_properties(CAF::openssl PROPERTIES IMPORTED_LOCATION ${CAF_OPENSSL_LIBRARY}
    INTERFACE_LINK_LIBRARIES CAF::io)
endif()

# CLI11 is header-only; Debian's package may or may not ship the CMake config.
if(NOT TARGET CLI11::CLI11)
  find_package(CLI11 QUIET)
endif()
if(NOT TARGET CLI11::CLI11)
  find_path(CLI11_INCLUDE_DIR CLI/CLI.hpp)
  if(NOT CLI11_INCLUDE_DIR)
    _troupe_dependency_missing("CLI11")
  endif()
  add_library(CLI11::CLI11 INTERFACE IMPORTED)
  target_include_directories(CLI11::CLI11 INTERFACE ${CLI11_INCLUDE_DIR})
endif()
