# The arm64 cross build (tests/deploy/test_arm64.sh): configures and builds
# <source>/build-arm64 with cmake/aarch64-linux-gnu.cmake, checks that the
# binaries are ARM aarch64 and runs the unit tests under qemu-aarch64. Runs
# only with GLASSBOX_ARM64=1 in the environment (packages from
# `GLASSBOX_ARM64=1 deploy/install-deps.sh`); skipped, exit 77, otherwise.
# Declared in a native build only (never inside the arm64 tree itself).
if(NOT CMAKE_CROSSCOMPILING)
  add_test(NAME deploy/test_arm64
           COMMAND bash ${CMAKE_CURRENT_LIST_DIR}/test_arm64.sh ${CMAKE_SOURCE_DIR}
                   ${CMAKE_COMMAND} ${CMAKE_CTEST_COMMAND})
  set_tests_properties(deploy/test_arm64 PROPERTIES
    LABELS "deploy;arm64" TIMEOUT 3600 SKIP_RETURN_CODE 77)
endif()

# Debian 12's GCC 12.2 for aarch64 (cross or native) dies with an internal
# compiler error in vect_transform_reduction on loops such as the tests'
# `scale = fmax(scale, fabs(x[i]))` (a max reduction of floats widened to
# double) at -O3. When this compiler has the bug, the test sources alone are
# built without the loop vectoriser; the library and the binaries keep -O3.
if(CMAKE_C_COMPILER_ID STREQUAL "GNU" AND CMAKE_SYSTEM_PROCESSOR MATCHES "^(aarch64|arm64)$")
  include(CheckCSourceCompiles)
  set(CMAKE_REQUIRED_FLAGS "-O3")
  set(CMAKE_REQUIRED_LIBRARIES m)
  check_c_source_compiles([=[
#include <math.h>
#include <stddef.h>
double gb_scale(const float *b, size_t n)
{
    double scale = 0.0;
    for (size_t i = 0; i < n; i++)
        scale = fmax(scale, fabs(b[i]));
    return scale;
}
int main(void) { float b[3] = {1, -2, 3}; return gb_scale(b, 3) > 0.0 ? 0 : 1; }
]=] GB_GCC_FMAX_REDUCTION_OK)
  unset(CMAKE_REQUIRED_FLAGS)
  unset(CMAKE_REQUIRED_LIBRARIES)
  if(NOT GB_GCC_FMAX_REDUCTION_OK)
    get_filename_component(GB_ARM64_TESTS_DIR ${CMAKE_CURRENT_LIST_DIR} DIRECTORY)
    file(GLOB GB_ARM64_TEST_SOURCES ${GB_ARM64_TESTS_DIR}/*/test_*.c)
    set_property(SOURCE ${GB_ARM64_TEST_SOURCES} APPEND PROPERTY COMPILE_OPTIONS
                 -fno-tree-loop-vectorize)
  endif()
endif()
