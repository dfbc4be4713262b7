#!/usr/bin/env bash
# Installs every Debian 12 package the build, the tests, the demo and the benchmarks need.
# Idempotent: packages already present are skipped; apt is only called when something is missing.
set -euo pipefail

PKGS=(
  # build
  build-essential cmake pkg-config git clang-14 libclang-rt-14-dev
  # libedgeslim
  libarchive-dev libjansson-dev libssl-dev libzstd-dev zlib1g-dev libseccomp-dev libcurl4-openssl-dev
  # edgeagent (static: mbedTLS for TLS, libsodium for ed25519)
  libmbedtls-dev libsodium-dev
  # cross builds of the agent (arm64 static archives through multiarch)
  gcc-aarch64-linux-gnu libc6-dev-arm64-cross qemu-user
  libmbedtls-dev:arm64 libsodium-dev:arm64 zlib1g-dev:arm64 libseccomp-dev:arm64 libcmocka-dev:arm64
  # tests
  libcmocka-dev python3 python3-pytest
  # real components the tests start
  podman skopeo umoci debootstrap uidmap fuse-overlayfs mosquitto mosquitto-clients
  busybox-static curl util-linux openssl dnsmasq-base collectd-core
  # benchmarks
  hyperfine time procps
  # static analysis (make lint, part of make check)
  cppcheck clang-tidy
)

SUDO=""
[ "$(id -u)" -eq 0 ] || SUDO="sudo"
need_update=0
if ! dpkg --print-foreign-architectures | grep -qx arm64; then
  $SUDO dpkg --add-architecture arm64
  need_update=1
fi

missing=()
for p in "${PKGS[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -eq 0 ] && [ $need_update -eq 0 ]; then
  echo "install-deps: all ${#PKGS[@]} packages present"
  exit 0
fi
echo "install-deps: installing ${missing[*]}"
$SUDO apt-get update -qq
DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${missing[@]}"
