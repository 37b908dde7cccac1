#!/bin/sh
# SPDX-License-Identifier: GPL-2.0-only
# Regenerates the binary seed corpora: small ELF files of every kind the
# symbolizer meets (full .symtab with DWARF, stripped with a build-id debug
# file and a debuglink, MiniDebugInfo, a shared library's .dynsym only), and
# this machine's /proc and cgroupfs files, each behind the selector byte the
# procfs and cgroupfs targets read first. Run from this directory.
set -eu
w=$(mktemp -d)
trap 'rm -rf "$w"' EXIT
cat > "$w/t.c" <<'C'
static inline __attribute__((always_inline)) int helper(int x) { return x * 7 + 1; }
__attribute__((noinline)) int seed_marker(int x) { return helper(x) * 3; }
int main(int argc, char **argv) { (void)argv; return seed_marker(argc); }
C
cc -Os -g -Wl,--build-id -o "$w/full" "$w/t.c"
cp "$w/full" elf/full
objcopy --only-keep-debug "$w/full" elf/debugfile
objcopy --strip-all "$w/full" elf/stripped-build-id
objcopy --strip-all --remove-section=.note.gnu.build-id "$w/full" "$w/linked"
cp "$w/full" "$w/x.debug"
(cd "$w" && objcopy --add-gnu-debuglink=x.debug linked)
cp "$w/linked" elf/debuglink
nm "$w/full" --format=posix --defined-only | awk '$2 ~ /[Tt]/ {print $1}' > "$w/keep"
objcopy -S --keep-symbols="$w/keep" elf/debugfile "$w/mini"
xz -f "$w/mini"
objcopy --strip-all --add-section .gnu_debugdata="$w/mini.xz" "$w/full" elf/minidebuginfo
cc -Os -shared -fPIC -o elf/shared.so "$w/t.c"
strip elf/shared.so
# procfs: the selector byte is the index in fuzz_procfs.c's files[]
i=0
for f in stat loadavg schedstat pressure/cpu pressure/memory pressure/io meminfo vmstat \
	diskstats self/maps self/status kallsyms self/mountinfo self/stat self/cgroup self/io; do
	if [ -r "/proc/$f" ]; then
		{ printf "\\$(printf %03o $i)"; head -c 6000 "/proc/$f"; } > "procfs/$(echo "$f" | tr / _)"
	fi
	i=$((i + 1))
done
# cgroupfs: index in fuzz_cgroupfs.c's files[]; 12 a cgroup's name, 13 a path
cg=$(find /sys/fs/cgroup -mindepth 1 -maxdepth 3 -name cpu.stat -printf '%h\n' 2>/dev/null | head -1)
[ -n "$cg" ] || cg=/sys/fs/cgroup
i=0
for f in cgroup.events cpu.stat cpu.max memory.current memory.max memory.events cpu.pressure \
	memory.pressure io.pressure io.stat cpuset.cpus.effective memory.stat; do
	if [ -r "$cg/$f" ]; then
		{ printf "\\$(printf %03o $i)"; head -c 6000 "$cg/$f"; } > "cgroupfs/$f"
	fi
	i=$((i + 1))
done
printf '\014docker-0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef.scope' \
	> cgroupfs/name
printf '\015/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod11111111_2222_3333_4444_555555555555.slice/cri-containerd-fedcba9876543210fedcba9876543210fedcba9876543210fedcba9876543210.scope' \
	> cgroupfs/path
