# Cross-compiling Glassbox for arm64 (aarch64) edge devices on a Debian x86-64
# host: Debian's crossbuild-essential-arm64 and the :arm64 -dev packages
# (GLASSBOX_ARM64=1 deploy/install-deps.sh installs them). protoc-c runs on the
# host (protobuf-c-compiler); the libraries, headers and .pc files are the
# arm64 ones under /usr/lib/aarch64-linux-gnu and /usr/include/aarch64-linux-gnu.
#
#   cmake -S . -B build-arm64 -DCMAKE_TOOLCHAIN_FILE=cmake/aarch64-linux-gnu.cmake
#
# The unit tests run under qemu-user: ctest prefixes every test executable with
# CMAKE_CROSSCOMPILING_EMULATOR, set here when qemu-aarch64 is installed. Its
# -L is /, not /usr/aarch64-linux-gnu: the libraries the binaries need are the
# multiarch ones (libc6:arm64 among them), and the loader must be theirs. The
# cross toolchain's ld-linux-aarch64.so.1 in /usr/aarch64-linux-gnu/lib
# (libc6-arm64-cross, 2.36-8) with libc6:arm64's libc.so.6 (2.36-9+deb12u*)
# hangs the first pthread_create (ZeroMQ's I/O thread) in a corrupt list.
set(CMAKE_SYSTEM_NAME Linux)
set(CMAKE_SYSTEM_PROCESSOR aarch64)
set(GB_CROSS_TRIPLET aarch64-linux-gnu)

set(CMAKE_C_COMPILER ${GB_CROSS_TRIPLET}-gcc)
set(CMAKE_AR ${GB_CROSS_TRIPLET}-ar CACHE FILEPATH "")
set(CMAKE_RANLIB ${GB_CROSS_TRIPLET}-ranlib CACHE FILEPATH "")
set(CMAKE_STRIP ${GB_CROSS_TRIPLET}-strip CACHE FILEPATH "")
# CPack's .deb of an arm64 build says so (dpkg-shlibdeps reads the arm64
# libraries' shlibs from the multiarch dpkg database).
set(CPACK_DEBIAN_PACKAGE_ARCHITECTURE arm64 CACHE STRING "")

# Multiarch: the arm64 libraries live in / beside the host's, under their
# triplet. Programs (protoc-c, python3, openssl, sh) are the host's; libraries,
# headers and packages are looked for in the arm64 directories.
set(CMAKE_LIBRARY_ARCHITECTURE ${GB_CROSS_TRIPLET})
set(CMAKE_FIND_ROOT_PATH /usr/${GB_CROSS_TRIPLET})
set(CMAKE_FIND_ROOT_PATH_MODE_PROGRAM NEVER)
set(CMAKE_FIND_ROOT_PATH_MODE_LIBRARY BOTH)
set(CMAKE_FIND_ROOT_PATH_MODE_INCLUDE BOTH)
set(CMAKE_FIND_ROOT_PATH_MODE_PACKAGE BOTH)
set(CMAKE_LIBRARY_PATH /usr/lib/${GB_CROSS_TRIPLET})
set(CMAKE_INCLUDE_PATH /usr/include/${GB_CROSS_TRIPLET})
# Never pick the host's x86-64 libraries from /usr/lib/x86_64-linux-gnu.
set(CMAKE_IGNORE_PATH /usr/lib/x86_64-linux-gnu /usr/include/x86_64-linux-gnu)

# pkg-config reads only the arm64 .pc files (and the architecture-independent
# ones); try_compile and the project see the same.
set(ENV{PKG_CONFIG_LIBDIR} "/usr/lib/${GB_CROSS_TRIPLET}/pkgconfig:/usr/share/pkgconfig")
set(ENV{PKG_CONFIG_PATH} "")
set(ENV{PKG_CONFIG_SYSROOT_DIR} "")

if(NOT DEFINED CMAKE_CROSSCOMPILING_EMULATOR)
  find_program(GB_QEMU_AARCH64 qemu-aarch64)
  if(GB_QEMU_AARCH64)
    set(CMAKE_CROSSCOMPILING_EMULATOR ${GB_QEMU_AARCH64} -L /
        CACHE STRING "runs the arm64 test executables")
  endif()
endif()
