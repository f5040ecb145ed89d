#!/usr/bin/env python3
"""Lowers the glibc an x86-64 ELF file asks for, for the portable bundle (scripts/bundle.sh, docs/bundle.md).

usage: elf_glibc_floor.py FLOOR PROVIDED FILE...
  FLOOR     the oldest glibc the bundle supports, e.g. 2.34
  PROVIDED  comma-separated symbols librazor-glibc-compat.so defines (packaging/glibc_compat.c)

For every version a file needs from glibc that is newer than FLOOR (a Vernaux entry of .gnu.version_r, e.g.
GLIBC_2.36 of libc.so.6), every undefined dynamic symbol bound to it must be one of PROVIDED: the symbol's
version is cleared (its .gnu.version entry set to 1, global) and the version reference is marked weak
(VER_FLG_WEAK), so that the loader of an older glibc accepts the file and resolves the symbol from the compat
library, and a newer glibc's loader still resolves it from the C library. Bytes change in place; the file's
size and layout do not.

Prints one line per file changed: "<file>: symbol@VERSION ..." (the files that need the compat library).
Exits 1 naming the file, the symbol and the version when a newer symbol is not in PROVIDED (the bundle would
not load on FLOOR), 2 on a file that is not a 64-bit little-endian ELF.
"""
import re
import struct
import sys

SHT_DYNSYM = 11
SHT_GNU_VERNEED = 0x6FFFFFFE
SHT_GNU_VERSYM = 0x6FFFFFFF
VER_FLG_WEAK = 0x2


def version_key(name):
    m = re.fullmatch(r"GLIBC_(\d+)\.(\d+)(?:\.(\d+))?", name)
    return None if not m else tuple(int(x or 0) for x in m.groups())


def cstr(buf, off):
    end = buf.index(b"\0", off)
    return buf[off:end].decode("ascii", "replace")


def process(path, floor, provided):
    with open(path, "rb") as f:
        buf = bytearray(f.read())
    if buf[:4] != b"\x7fELF" or buf[4] != 2 or buf[5] != 1:
        print(f"{path}: not a 64-bit little-endian ELF file", file=sys.stderr)
        sys.exit(2)
    shoff, = struct.unpack_from("<Q", buf, 0x28)
    shentsize, shnum = struct.unpack_from("<HH", buf, 0x3A)
    sections = []
    for i in range(shnum):
        _, sh_type, _, _, off, size, link, info, _, entsize = struct.unpack_from("<IIQQQQIIQQ", buf,
                                                                                 shoff + i * shentsize)
        sections.append((sh_type, off, size, link, info, entsize))
    verneed = next((s for s in sections if s[0] == SHT_GNU_VERNEED), None)
    versym = next((s for s in sections if s[0] == SHT_GNU_VERSYM), None)
    dynsym = next((s for s in sections if s[0] == SHT_DYNSYM), None)
    if not verneed or not versym or not dynsym:
        return []
    strtab = sections[verneed[3]][1]
    newer = {}  # version index -> name
    off = verneed[1]
    for _ in range(verneed[4]):
        _, cnt, _, aux, nxt = struct.unpack_from("<HHIII", buf, off)
        a = off + aux
        for _ in range(cnt):
            _, flags, other, name_off, anext = struct.unpack_from("<IHHII", buf, a)
            name = cstr(buf, strtab + name_off)
            key = version_key(name)
            if key and key > floor:
                newer[other] = name
                struct.pack_into("<H", buf, a + 4, flags | VER_FLG_WEAK)
            if not anext:
                break
            a += anext
        if not nxt:
            break
        off += nxt
    if not newer:
        return []
    dynstr = sections[dynsym[3]][1]
    changed = []
    for i in range(dynsym[2] // 24):
        name_off, _, _, shndx = struct.unpack_from("<IBBH", buf, dynsym[1] + i * 24)
        vs, = struct.unpack_from("<H", buf, versym[1] + i * 2)
        if (vs & 0x7FFF) not in newer:
            continue
        name = cstr(buf, dynstr + name_off)
        if shndx != 0 or name not in provided:
            print(f"{path}: {name}@{newer[vs & 0x7FFF]} is newer than glibc {'.'.join(map(str, floor))} "
                  f"and librazor-glibc-compat.so does not provide it", file=sys.stderr)
            sys.exit(1)
        struct.pack_into("<H", buf, versym[1] + i * 2, 1)
        changed.append(f"{name}@{newer[vs & 0x7FFF]}")
    with open(path, "r+b") as f:
        f.write(buf)
    return changed


def main():
    if len(sys.argv) < 4:
        print(__doc__, file=sys.stderr)
        sys.exit(2)
    floor = tuple(int(x) for x in sys.argv[1].split(".")) + (0,)
    provided = set(sys.argv[2].split(","))
    for path in sys.argv[3:]:
        changed = process(path, floor, provided)
        if changed:
            print(f"{path}: {' '.join(changed)}")


if __name__ == "__main__":
    main()
