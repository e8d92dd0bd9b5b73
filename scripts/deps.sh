#!/usr/bin/env bash
# deps.sh — install the Debian 12 packages imgpipe needs to build and test.
# Safe to run again: apt-get skips what is installed.  Uses sudo when not root.
set -euo pipefail
PKGS=(
  build-essential cmake pkg-config          # toolchain
  libyaml-dev zlib1g-dev libzstd-dev        # recipes, compression
  libbz2-dev                                # dmg bzip2 (UDBZ) chunks
  libsqlite3-dev libssl-dev                 # build cache, SHA-256 and ciphers
  nettle-dev                                # LUKS serpent/twofish (the library qemu uses)
  libcmocka-dev                             # unit tests
  qemu-utils                                # qemu-img: the test oracle, never used by the product
  python3 xxd e2fsprogs                     # test fixtures (crafted images, mkfs.ext4 -d)
  time sqlite3                              # hardening tests: /usr/bin/time -f %M, cache integrity_check
  clang-format                              # style check
)
SUDO=
if [ "$(id -u)" -ne 0 ]; then SUDO=sudo; fi
missing=()
for p in "${PKGS[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  export DEBIAN_FRONTEND=noninteractive
  $SUDO apt-get update
  $SUDO apt-get install -y --no-install-recommends "${missing[@]}"
fi
