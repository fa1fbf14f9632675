# `cmake --install`: the static libraries, the public headers (include/troupe/<folder>/*.h, so
# that `#include "actors/engine.h"` works as in the tree), a CMake package (find_package(troupe
# CONFIG), targets troupe::core ... troupe::actors, troupe::net) and troupe.pc for pkg-config.
# Included from the top-level CMakeLists.txt after every library folder: it collects the
# troupe_* static libraries of those folders itself, so a new library needs no edit here
# (its headers are installed with its folder).
include(CMakePackageConfigHelpers)
set(TROUPE_INSTALL_CMAKEDIR ${CMAKE_INSTALL_LIBDIR}/cmake/troupe)

set(TROUPE_INSTALLED_LIBRARIES)
get_property(_troupe_dirs DIRECTORY ${PROJECT_SOURCE_DIR} PROPERTY SUBDIRECTORIES)
foreach(_troupe_dir IN LISTS _troupe_dirs)
  get_filename_component(_troupe_folder ${_troupe_dir} NAME)
  if(_troupe_folder MATCHES "^(app|examples|tests)$")
    continue()
  endif()
  get_property(_troupe_targets DIRECTORY ${_troupe_dir} PROPERTY BUILDSYSTEM_TARGETS)
  set(_troupe_has_library OFF)
  foreach(_troupe_target IN LISTS _troupe_targets)
    get_target_property(_troupe_type ${_troupe_target} TYPE)
    if(_troupe_type STREQUAL "STATIC_LIBRARY" AND _troupe_target MATCHES "^troupe_(.+)$")
      # troupe_cpu_kernels -> troupe::cpu_kernels; the archive keeps its name (libtroupe_cpu_kernels.a).
      set_target_properties(${_troupe_target} PROPERTIES EXPORT_NAME ${CMAKE_MATCH_1})
      list(APPEND TROUPE_INSTALLED_LIBRARIES ${_troupe_target})
      set(_troupe_has_library ON)
    endif()
  endforeach()
  if(_troupe_has_library)
    install(DIRECTORY ${_troupe_dir}/ DESTINATION ${CMAKE_INSTALL_INCLUDEDIR}/troupe/${_troupe_folder}
      COMPONENT troupe_development FILES_MATCHING PATTERN "*.h" PATTERN "*.hpp" PATTERN "static" EXCLUDE)
  endif()
endforeach()

# A sanitized build (TROUPE_SANITIZE, the asan preset) gives sanitized archives: their users must
# link the sanitizer runtimes too (the build itself gets them from add_link_options).
set(TROUPE_PC_LDFLAGS)
if(TROUPE_SANITIZE STREQUAL "thread")
  target_link_options(troupe_core INTERFACE $<INSTALL_INTERFACE:-fsanitize=thread>)
  set(TROUPE_PC_LDFLAGS " -fsanitize=thread")
elseif(TROUPE_SANITIZE)
  target_link_options(troupe_core INTERFACE $<INSTALL_INTERFACE:-fsanitize=address,undefined>)
  set(TROUPE_PC_LDFLAGS " -fsanitize=address,undefined")
endif()

install(TARGETS ${TROUPE_INSTALLED_LIBRARIES} EXPORT troupeTargets
  ARCHIVE DESTINATION ${CMAKE_INSTALL_LIBDIR} COMPONENT troupe_development)
install(EXPORT troupeTargets NAMESPACE troupe:: DESTINATION ${TROUPE_INSTALL_CMAKEDIR}
  COMPONENT troupe_development)

configure_package_config_file(${CMAKE_CURRENT_LIST_DIR}/troupeConfig.cmake.in
  ${PROJECT_BINARY_DIR}/troupeConfig.cmake INSTALL_DESTINATION ${TROUPE_INSTALL_CMAKEDIR})
write_basic_package_version_file(${PROJECT_BINARY_DIR}/troupeConfigVersion.cmake
  VERSION ${PROJECT_VERSION} COMPATIBILITY SameMinorVersion)
install(FILES ${PROJECT_BINARY_DIR}/troupeConfig.cmake ${PROJECT_BINARY_DIR}/troupeConfigVersion.cmake
  ${CMAKE_CURRENT_LIST_DIR}/TroupeLibraryDependencies.cmake
  DESTINATION ${TROUPE_INSTALL_CMAKEDIR} COMPONENT troupe_development)

# troupe.pc: every CPU library, in link order (each before what it uses), then the
# dependencies. troupe_gpu (CUDA) is left out: nothing but the troupe binary links it; CMake
# users get it as troupe::gpu. Static archives, so `pkg-config --libs troupe` is the whole line.
set(_troupe_pc_order net client actors chat spec backends config cpu quant cpu_kernels kv sampling grammar model tokenizer core)
set(TROUPE_PC_LIBS)
foreach(_troupe_name IN LISTS _troupe_pc_order)
  if(TARGET troupe_${_troupe_name})
    string(APPEND TROUPE_PC_LIBS " -ltroupe_${_troupe_name}")
  endif()
endforeach()
foreach(_troupe_target IN LISTS TROUPE_INSTALLED_LIBRARIES)
  string(REGEX REPLACE "^troupe_" "" _troupe_name ${_troupe_target})
  if(NOT _troupe_name IN_LIST _troupe_pc_order AND NOT _troupe_name STREQUAL "gpu")
    message(FATAL_ERROR "cmake/TroupeInstall.cmake: put ${_troupe_target} into the link order of troupe.pc")
  endif()
endforeach()
# Relocatable: the prefix is found from where troupe.pc lies (cmake --install --prefix DIR).
file(RELATIVE_PATH TROUPE_PC_PREFIX /prefix/${CMAKE_INSTALL_LIBDIR}/pkgconfig /prefix)
string(REGEX REPLACE "/$" "" TROUPE_PC_PREFIX "${TROUPE_PC_PREFIX}")
set(TROUPE_PC_CFLAGS)
if(NOT CAF_INCLUDE_DIR MATCHES "^/usr/include/?$")
  set(TROUPE_PC_CFLAGS " -I${CAF_INCLUDE_DIR}")
endif()
configure_file(${CMAKE_CURRENT_LIST_DIR}/troupe.pc.in ${PROJECT_BINARY_DIR}/troupe.pc.configured @ONLY)
# CAF and Boost.JSON have no .pc file: the generator expressions name the very files CMake links.
file(GENERATE OUTPUT ${PROJECT_BINARY_DIR}/troupe.pc INPUT ${PROJECT_BINARY_DIR}/troupe.pc.configured)
install(FILES ${PROJECT_BINARY_DIR}/troupe.pc DESTINATION ${CMAKE_INSTALL_LIBDIR}/pkgconfig
  COMPONENT troupe_development)
