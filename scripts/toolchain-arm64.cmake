# Debian's cross compiler for linux/arm64 (gcc-aarch64-linux-gnu). The agent's static archives
# (mbedTLS, libsodium, zlib, cmocka for its tests) come from the arm64 -dev packages installed
# through multiarch into /usr/lib/aarch64-linux-gnu, which CMake searches through
# CMAKE_LIBRARY_ARCHITECTURE. Tests run under qemu-user with the arm64 loader and libc of the
# multiarch libc6:arm64 package (-L /). Not with -L /usr/aarch64-linux-gnu: there the loader
# comes from libc6-arm64-cross (2.36-8) while libc.so.6 is found in /lib/aarch64-linux-gnu
# (libc6:arm64, 2.36-9+deb12uN); that mixed pair hangs the child of every fork() in glibc's
# own code, which is what stopped the tests that start servers from running under qemu.
set(CMAKE_SYSTEM_NAME Linux)
set(CMAKE_SYSTEM_PROCESSOR aarch64)
set(CMAKE_C_COMPILER aarch64-linux-gnu-gcc)
set(CMAKE_LIBRARY_ARCHITECTURE aarch64-linux-gnu)
set(CMAKE_FIND_ROOT_PATH_MODE_PROGRAM NEVER)
set(CMAKE_IGNORE_PATH /usr/lib/x86_64-linux-gnu /lib/x86_64-linux-gnu)
set(CMAKE_CROSSCOMPILING_EMULATOR qemu-aarch64;-L;/)
