# Debian's cross compiler for linux/arm64 (gcc-aarch64-linux-gnu). The agent's static archives
# (mbedTLS, libsodium, zlib, cmocka for its tests) come from the arm64 -dev packages installed
# through multiarch into /usr/lib/aarch64-linux-gnu, which CMake searches through
# CMAKE_LIBRARY_ARCHITECTURE. Tests run under qemu-user.
set(CMAKE_SYSTEM_NAME Linux)
set(CMAKE_SYSTEM_PROCESSOR aarch64)
set(CMAKE_C_COMPILER aarch64-linux-gnu-gcc)
set(CMAKE_LIBRARY_ARCHITECTURE aarch64-linux-gnu)
set(CMAKE_FIND_ROOT_PATH_MODE_PROGRAM NEVER)
set(CMAKE_IGNORE_PATH /usr/lib/x86_64-linux-gnu /lib/x86_64-linux-gnu)
set(CMAKE_CROSSCOMPILING_EMULATOR qemu-aarch64;-L;/usr/aarch64-linux-gnu)
