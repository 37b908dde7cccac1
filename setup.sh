#!/usr/bin/env bash
# SPDX-License-Identifier: GPL-2.0-only
# Set up a Debian 12 machine for autotrace, build it, and run it or its tests.
#
#   ./setup.sh run     install packages, build (release), run the agent in the
#                      foreground on its built-in defaults
#   ./setup.sh test    install packages (and the test Elasticsearch), build with
#                      ASan/UBSan, run the whole test suite, then the kernel
#                      matrix (pinned Debian kernels under qemu)
#   ./setup.sh deps    only install packages
#   ./setup.sh build   only build (release) into build/
#
# Idempotent: packages already present are not reinstalled. Run as root.
set -euo pipefail
cd "$(dirname "$0")"
ROOT=$(pwd)

# Everything the build, the agent and the tests need, from Debian 12.
BUILD_PKGS=(build-essential cmake ninja-build pkg-config clang llvm bpftool
	libbpf-dev libelf-dev libdw-dev zlib1g-dev libyaml-dev libjansson-dev
	libcurl4-openssl-dev libcmocka-dev liblzma-dev libssl-dev libcrypt-dev dpkg-dev gzip)
RUN_PKGS=(libbpf1 libelf1 libdw1 libyaml-0-2 libjansson4 libcurl4 liblzma5 libssl3 libcrypt1)
TEST_PKGS=(python3 python3-pytest bpftool util-linux iproute2 systemd procps clang-format
	curl unzip openjdk-17-jre-headless nginx-light openssl linux-perf bpftrace
	bpfcc-tools libclang-rt-14-dev file binutils elfutils strace gdb
	mmdebstrap groff-base bash-completion prometheus python3-prometheus-client
	qemu-system-x86 busybox-static kmod e2fsprogs debian-archive-keyring) # the last five: the kernel matrix (test/kernels)

need_root() {
	if [ "$(id -u)" -ne 0 ]; then
		echo "setup.sh: run as root (BPF needs it, and so does apt-get)" >&2
		exit 2
	fi
}

install_pkgs() {
	local missing=()
	for p in "$@"; do
		dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" ||
			missing+=("$p")
	done
	if [ ${#missing[@]} -gt 0 ]; then
		echo "setup.sh: installing ${missing[*]}"
		if [ ! -f /var/lib/apt/periodic/autotrace-updated ] ||
			[ -z "$(find /var/lib/apt/lists -maxdepth 1 -name '*Packages' -print -quit)" ]; then
			apt-get update -q
			mkdir -p /var/lib/apt/periodic && touch /var/lib/apt/periodic/autotrace-updated
		fi
		DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "${missing[@]}"
	fi
}

# tracefs and debugfs: the agent mounts tracefs itself when a probe needs it;
# bpffs is only used by bpftool in tests.
mount_fs() {
	mountpoint -q /sys/fs/bpf || mount -t bpf bpf /sys/fs/bpf 2>/dev/null || true
}

build() {
	local dir=$1
	shift
	cmake -S "$ROOT" -B "$dir" -G Ninja "$@"
	cmake --build "$dir" -j"$(nproc)"
}

cmd=${1:-}
case "$cmd" in
deps)
	need_root
	install_pkgs "${BUILD_PKGS[@]}" "${RUN_PKGS[@]}" "${TEST_PKGS[@]}"
	;;
build)
	build "$ROOT/build" -DCMAKE_BUILD_TYPE=RelWithDebInfo -DAUTOTRACE_TESTS=OFF
	;;
run)
	need_root
	install_pkgs "${BUILD_PKGS[@]}" "${RUN_PKGS[@]}"
	# the agent alone: the tests' tools (cmocka, python, clang-format) are not needed
	build "$ROOT/build" -DCMAKE_BUILD_TYPE=RelWithDebInfo -DAUTOTRACE_TESTS=OFF
	mount_fs
	shift
	exec "$ROOT/build/autotrace" run "$@"
	;;
test)
	need_root
	install_pkgs "${BUILD_PKGS[@]}" "${RUN_PKGS[@]}" "${TEST_PKGS[@]}"
	mount_fs
	if [ -x "$ROOT/test/es/setup-es.sh" ]; then
		"$ROOT/test/es/setup-es.sh" install
	fi
	build "$ROOT/build-test" -DCMAKE_BUILD_TYPE=Debug -DAUTOTRACE_SANITIZE=ON
	cd "$ROOT/build-test"
	# the host suite, then the kernel matrix (qemu guests, docs/compatibility.md)
	rc=0
	CI=${CI:-true} ctest --output-on-failure --timeout 900 -LE kernels || rc=$?
	CI=${CI:-true} ctest --output-on-failure --timeout 1500 -L kernels || rc=$?
	exit $rc
	;;
*)
	sed -n '3,13p' "$0" | sed 's/^# \{0,1\}//'
	exit 2
	;;
esac
