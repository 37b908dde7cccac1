#!/usr/bin/python3
# SPDX-License-Identifier: GPL-2.0-only
"""Every BPF object the build makes loads on the oldest supported kernel (5.10,
docs/compatibility.md) as far as its instructions go: no atomic instruction
other than a plain add (BPF_XADD). A fetch-and-add whose result is used, an
exchange, a compare-and-exchange or an atomic and/or/xor is BPF_STX|BPF_ATOMIC
with a non-zero immediate, which kernels before 5.12 reject while checking the
program's instructions ("BPF_STX uses reserved fields"), dead code included:
the whole object then fails to load, whatever rodata switches off.

    bpf_insns.py SKEL_DIR    (the build's skel/ directory of *.bpf.o)
"""
import glob
import os
import struct
import sys

SHF_EXECINSTR = 0x4
BPF_STX = 0x03
BPF_ATOMIC = 0xC0
ATOMIC_OPS = {0x00: "add", 0x01: "fetch-add", 0x40: "or", 0x41: "fetch-or", 0x50: "and",
              0x51: "fetch-and", 0xA0: "xor", 0xA1: "fetch-xor", 0xE1: "xchg", 0xF1: "cmpxchg"}


def sections(data):
    """[(name, flags, bytes)] of a little-endian ELF64 file."""
    if data[:4] != b"\x7fELF" or data[4] != 2 or data[5] != 1:
        raise ValueError("not a little-endian ELF64 file")
    shoff, = struct.unpack_from("<Q", data, 0x28)
    shentsize, shnum, shstrndx = struct.unpack_from("<HHH", data, 0x3A)
    heads = [struct.unpack_from("<IIQQQQIIQQ", data, shoff + i * shentsize) for i in range(shnum)]
    strtab = heads[shstrndx]
    names = data[strtab[4]:strtab[4] + strtab[5]]
    out = []
    for name_off, _type, flags, _addr, off, size, *_ in heads:
        name = names[name_off:names.index(b"\0", name_off)].decode()
        out.append((name, flags, data[off:off + size]))
    return out


def violations(path):
    with open(path, "rb") as f:
        data = f.read()
    bad = []
    for name, flags, code in sections(data):
        if not flags & SHF_EXECINSTR:
            continue
        for i in range(0, len(code) - 7, 8):
            op = code[i]
            imm, = struct.unpack_from("<i", code, i + 4)
            if op & 0x07 == BPF_STX and op & 0xE0 == BPF_ATOMIC and imm != 0:
                bad.append(f"{os.path.basename(path)}: section {name}, instruction {i // 8}: "
                           f"atomic {ATOMIC_OPS.get(imm & 0xFF, hex(imm))}")
    return bad


def main():
    objs = sorted(glob.glob(os.path.join(sys.argv[1], "*.bpf.o")))
    if not objs:
        print(f"no *.bpf.o in {sys.argv[1]}")
        return 1
    bad = [v for o in objs for v in violations(o)]
    for v in bad:
        print(v)
    if bad:
        print("kernels before 5.12 cannot load these (BPF_FETCH and the other atomics): count "
              "with __sync_fetch_and_add without using its result, or per CPU "
              "(ustack_next_seq() in probes/ustack.bpf.h)")
        return 1
    print(f"{len(objs)} objects: atomic adds only")
    return 0


if __name__ == "__main__":
    sys.exit(main())
