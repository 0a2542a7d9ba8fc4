#!/usr/bin/python3
# SPDX-License-Identifier: MIT
"""chainshadow.py - random differencing chains with raw shadow images.

Builds a chain with the tidemark program (a base, then children made with
'vhd new CHILD --parent PARENT'), doing random writes and discards into the
top file after each level is created, while keeping a raw shadow image per
level: shadow k is what level k must read (through its parents).  Writes
cover small and unaligned ranges (sub-sector, crossing sector and block
boundaries), whole blocks, runs of blocks, ranges around a sector-bitmap
chunk boundary when the disk is bigger than a chunk, and discards (whole
block ZERO / --unmap UNMAPPED, and partial ones) over the parents' data.

    chainshadow.py build --tidemark T --dir D --name N --seed S
                   --logical-sector 512|4096 --size V --block-sizes B0,B1,..
                   [--base dynamic|fixed] [--ops K] [--level-ops K0,K1,..]
                   [--boundary]
        One level per block size (B0 is the base's).  Files are
        D/N.0.vhdx ... (the base is level 0), shadows D/N.K.raw (sparse).
        Writes the manifest to D/N.json and the tidemark commands run, as a
        shell script, to D/N.cmds (for reproducing a failure).  Exit 1 when
        a tidemark command fails (the manifest says which).

    chainshadow.py libvhdi-views MANIFEST
        libvhdi 20210425's view of every level (see "libvhdi's view" below):
        the shadow where the level's data is its own, the parent's view
        where libvhdi reads the parent - also in ZERO and UNMAPPED blocks,
        the known deviation (reference 12.2) - and the file's bytes where a
        bitmap bit is set outside a PARTIALLY_PRESENT block.  Block states
        and bitmaps are read from the file here, independently.  Writes
        D/N.K.libvhdi.raw and prints JSON per level: the view, the blocks
        where reading the parent made a difference, the bytes taken from
        stale bits, the ranges where the view differs from the shadow, and
        "inconsistent": states or bitmaps contradicting the shadows (a
        NOT_PRESENT block or clear bit whose shadow differs from the
        parent's, a ZERO/UNMAPPED block whose shadow is not zero).

    chainshadow.py get MANIFEST PATH
        one field of a manifest (dotted path, list indices allowed)

The module is also imported by the tests' Python helpers.
"""

import argparse
import json
import os
import random
import shlex
import subprocess
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import chainpatch  # noqa: E402

KiB = 1024
MiB = 1024 * KiB
GiB = 1024 * MiB


def parse_size(s):
    s = str(s)
    m = {"K": KiB, "M": MiB, "G": GiB}.get(s[-1:].upper())
    return int(s[:-1]) * m if m else int(s)


class ToolFailed(Exception):
    pass


class Chain:
    def __init__(self, tm, d, name, ls, size, rnd):
        self.tm = tm
        self.d = os.path.abspath(d)
        self.name = name
        self.ls = ls
        self.size = size
        self.rnd = rnd
        self.levels = []
        self.ops = []            # (level, op, offset, length, detail)
        self.hot = []            # (offset, length) written by any level
        self.cmds = open(os.path.join(self.d, name + ".cmds"), "w")
        self.cmds.write("# %s: reproduce with TIDEMARK=... in %s\nset -e\n"
                        % (name, self.d))
        self.chunk = (1 << 23) * ls

    # -- running tidemark -------------------------------------------------

    def run(self, args, data=None):
        line = "$TIDEMARK " + " ".join(shlex.quote(a) for a in args)
        if data is not None:
            line = "%s <%s" % (line, shlex.quote(data[0]))
        self.cmds.write(line + "\n")
        self.cmds.flush()
        stdin = (open(os.path.join(self.d, data[0]), "rb") if data
                 else subprocess.DEVNULL)
        try:
            p = subprocess.run([self.tm] + args, stdin=stdin,
                               stdout=subprocess.PIPE,
                               stderr=subprocess.PIPE, cwd=self.d,
                               timeout=300)
        finally:
            if data:
                stdin.close()
        if p.returncode != 0:
            raise ToolFailed("%s: rc %d: %s" % (line, p.returncode,
                                                 p.stderr.decode(
                                                     "utf-8", "replace")
                                                 .strip()[:400]))
        return p

    @property
    def top(self):
        return self.levels[-1]

    def fname(self, k):
        return "%s.%d.vhdx" % (self.name, k)

    # -- levels --------------------------------------------------------------

    def new_base(self, bs, kind):
        f = self.fname(0)
        sh = os.path.join(self.d, "%s.0.raw" % self.name)
        self.run(["vhd", "new", f, "--size", str(self.size), "--" + kind,
                  "--block-size", str(bs), "--logical-sector", str(self.ls)])
        with open(sh, "wb") as s:
            s.truncate(self.size)
        self.levels.append({"level": 0, "file": os.path.join(self.d, f),
                            "name": f, "shadow": sh, "block_size": bs,
                            "kind": kind})

    def new_child(self, bs):
        k = len(self.levels)
        f = self.fname(k)
        sh = os.path.join(self.d, "%s.%d.raw" % (self.name, k))
        self.run(["vhd", "new", f, "--parent", self.top["name"],
                  "--block-size", str(bs)])
        subprocess.run(["cp", "--sparse=always", self.top["shadow"], sh],
                       check=True)
        self.levels.append({"level": k, "file": os.path.join(self.d, f),
                            "name": f, "shadow": sh, "block_size": bs,
                            "kind": "differencing"})

    # -- operations on the top ----------------------------------------------

    def clamp(self, off, n):
        off = max(0, min(off, self.size - 1))
        return off, max(1, min(n, self.size - off))

    def write(self, off, n, why, random_data=False):
        off, n = self.clamp(off, n)
        k = len(self.levels) - 1
        if random_data:
            buf = self.rnd.randbytes(n)
            tmp = os.path.join(self.d, "%s.data" % self.name)
            # Kept per write so that the .cmds script can replay it.
            tmp = "%s.%d.%d" % (tmp, k, len(self.ops))
            with open(tmp, "wb") as t:
                t.write(buf)
            self.run(["vhd", "write", self.top["name"], "--offset",
                      str(off)], data=(os.path.basename(tmp),))
            detail = "random"
        else:
            b = self.rnd.randrange(1, 256)
            buf = bytes([b]) * n
            self.run(["vhd", "write", self.top["name"], "--offset", str(off),
                      "--pattern", str(b), "--length", str(n)])
            detail = "pattern %#x" % b
        fd = os.open(self.top["shadow"], os.O_WRONLY)
        try:
            os.pwrite(fd, buf, off)
        finally:
            os.close(fd)
        self.ops.append([k, "write", off, n, "%s (%s)" % (detail, why)])
        self.hot.append((off, n))

    def discard(self, off, n, unmap, why):
        off, n = self.clamp(off, n)
        k = len(self.levels) - 1
        args = ["vhd", "discard", self.top["name"], "--offset", str(off),
                "--length", str(n)]
        if unmap:
            args.append("--unmap")
        self.run(args)
        fd = os.open(self.top["shadow"], os.O_WRONLY)
        try:
            step = 4 * MiB
            p = off
            while p < off + n:
                m = min(step, off + n - p)
                os.pwrite(fd, bytes(m), p)
                p += m
        finally:
            os.close(fd)
        self.ops.append([k, "discard" + (" --unmap" if unmap else ""),
                         off, n, why])

    # -- random mixes ------------------------------------------------------

    def hot_block(self, bs):
        """A block (of size bs) holding data of a lower level, or random."""
        if self.hot and self.rnd.random() < 0.85:
            o, n = self.rnd.choice(self.hot)
            p = o + self.rnd.randrange(n)
        else:
            p = self.rnd.randrange(self.size)
        return p // bs * bs

    def random_ops(self, count, boundary):
        r = self.rnd
        ls = self.ls
        bs = self.top["block_size"]
        child = len(self.levels) > 1
        nblocks = -(-self.size // bs)
        for _ in range(count):
            kind = r.choices(
                ["subsector", "sectors", "blockedge", "multiblock",
                 "wholeblock", "overparent", "discard_block",
                 "discard_partial", "tail"],
                [14, 10, 10, 4, 3, 10 if child else 2,
                 6 if child else 2, 5, 2])[0]
            if kind == "subsector":
                off = r.randrange(self.size)
                self.write(off, r.randrange(1, ls), kind,
                           random_data=r.random() < 0.5)
            elif kind == "sectors":
                off = r.randrange(self.size)
                self.write(off, r.randrange(ls // 2, 5 * ls), kind,
                           random_data=r.random() < 0.5)
            elif kind == "blockedge":
                b = r.randrange(1, max(2, nblocks))
                off = b * bs - r.randrange(1, 3 * ls)
                self.write(off, r.randrange(2, 6 * ls), kind,
                           random_data=r.random() < 0.5)
            elif kind == "multiblock":
                off = r.randrange(self.size)
                self.write(off, r.randrange(bs // 2, 2 * bs + 3 * ls), kind)
            elif kind == "wholeblock":
                self.write(r.randrange(nblocks) * bs, bs, kind)
            elif kind == "overparent":
                # Part of a block whose data is a parent's: the rest of
                # the block must keep reading the parent (sector bitmap).
                b = self.hot_block(bs)
                off = b + r.randrange(bs)
                self.write(off, r.randrange(1, 8 * ls), kind,
                           random_data=r.random() < 0.3)
            elif kind == "discard_block":
                b = self.hot_block(bs)
                cnt = r.choice([1, 1, 1, 2])
                self.discard(b, cnt * bs, r.random() < 0.5,
                             "whole blocks over data")
                if r.random() < 0.3:
                    # A small write into the discarded block: the rest of
                    # it must keep reading zeros, not the parent.
                    self.write(b + r.randrange(bs), r.randrange(1, 3 * ls),
                               "into a discarded block")
            elif kind == "discard_partial":
                b = self.hot_block(bs)
                off = b + r.randrange(bs)
                self.discard(off, r.randrange(1, max(2, bs // 3)),
                             r.random() < 0.5, "partial")
            elif kind == "tail":
                n = r.randrange(1, 3 * ls)
                self.write(self.size - n, n, kind)
        if boundary and self.size > self.chunk:
            c = self.chunk
            # A write straddling the chunk boundary, one just before it,
            # one just after it, and in children a discard crossing it.
            self.write(c - r.randrange(1, 3 * ls), r.randrange(2, 6 * ls),
                       "chunk boundary", random_data=True)
            self.write(c - bs + r.randrange(bs // 2), r.randrange(1, 3 * ls),
                       "chunk 0 last block")
            self.write(c + r.randrange(bs), r.randrange(1, 3 * ls),
                       "chunk 1 first block")
            if child:
                self.discard(c - r.randrange(1, 2 * ls),
                             r.randrange(2, 4 * ls), r.random() < 0.5,
                             "partial across the chunk boundary")

    def manifest(self, err=None):
        return {"name": self.name, "dir": self.d, "logical_sector": self.ls,
                "size": self.size, "chunk": self.chunk,
                "levels": self.levels, "ops": self.ops,
                "cmds": os.path.join(self.d, self.name + ".cmds"),
                "error": err}


def build(a):
    rnd = random.Random(a.seed)
    bss = [parse_size(x) for x in a.block_sizes.split(",")]
    ch = Chain(a.tidemark, a.dir, a.name, a.logical_sector,
               parse_size(a.size), rnd)
    err = None
    nops = [a.ops] * len(bss)
    if a.level_ops:
        nops = [int(x) for x in a.level_ops.split(",")]
        nops += [a.ops] * (len(bss) - len(nops))
    try:
        ch.new_base(bss[0], a.base)
        ch.random_ops(nops[0], a.boundary)
        for i, bs in enumerate(bss[1:]):
            ch.new_child(bs)
            ch.random_ops(nops[i + 1], a.boundary)
    except ToolFailed as e:
        err = str(e)
    m = ch.manifest(err)
    with open(os.path.join(ch.d, a.name + ".json"), "w") as f:
        json.dump(m, f, indent=1)
    ch.cmds.close()
    if err:
        print("chainshadow: %s" % err, file=sys.stderr)
        return 1
    return 0


# ---- libvhdi's view ---------------------------------------------------------
#
# libvhdi 20210425 reads a block of a differencing disk like this (its
# libvhdi_block_allocation_table_read_element_data and
# libvhdi_block_descriptor_read_sector_bitmap_file_io_handle):
#   - FULLY_PRESENT (6): the block's data at its FileOffsetMB;
#   - any other state: it reads the block's slice of the chunk's sector
#     bitmap at (SB entry's FileOffsetMB) + (block % R) * (bitmap bytes per
#     block) - whatever the SB entry's state, so offset 0, the file's first
#     bytes, when the chunk has no bitmap - and per sector: bit 1 reads the
#     file at (the block's FileOffsetMB) + sector offset, bit 0 reads the
#     parent.
# So ZERO and UNMAPPED blocks read the parent (the documented deviation),
# and any set bit outside a PARTIALLY_PRESENT block - a stale bit of a block
# that was partially present before a discard, or a bit of the file's own
# header bytes taken as a bitmap - reads the child file's bytes near its
# start.  The view below emulates exactly that, using the shadow wherever
# the data is genuinely the level's own.

PARENT_READING = (0, 1, 2, 3)


def copy_range(src, dst, off, n, src_off=None):
    """Copies n bytes at src_off (default off) of fd src to off in fd dst;
    bytes past src's end read as zeros."""
    step = 4 * MiB
    so = off if src_off is None else src_off
    p = 0
    while p < n:
        m = min(step, n - p)
        b = os.pread(src, m, so + p)
        b += bytes(m - len(b))
        os.pwrite(dst, b, off + p)
        p += m


def bit_runs(bm, nbits):
    """[(first, count, bit)] runs of an LSB-first bitmap."""
    out = []
    cur = None
    start = 0
    for i in range(nbits):
        v = (bm[i >> 3] >> (i & 7)) & 1 if (i >> 3) < len(bm) else 0
        if v != cur:
            if cur is not None:
                out.append((start, i - start, cur))
            cur, start = v, i
    if cur is not None:
        out.append((start, nbits - start, cur))
    return out


def diff_ranges(fa, fb, size, gran):
    """Ranges (granularity gran) where two files differ, and the bytes of
    the 512-byte sectors that differ."""
    out = []
    nbytes = 0
    p = 0
    while p < size:
        m = min(gran, size - p)
        a = os.pread(fa, m, p)
        b = os.pread(fb, m, p)
        if a != b:
            # Differing bytes, counted per 512-byte sector.
            nbytes += sum(512 for i in range(0, m, 512)
                          if a[i:i + 512] != b[i:i + 512])
            if out and out[-1][0] + out[-1][1] == p:
                out[-1][1] += m
            else:
                out.append([p, m])
        p += m
    return out, nbytes


def level_view(m, k, prev_view, res):
    """Builds level k's libvhdi view from prev_view (level k-1's); fills
    res with the deviations met and with inconsistencies between the
    file's states/bitmaps and the shadows."""
    lv = m["levels"][k]
    ls = m["logical_sector"]
    view = lv["shadow"][:-len(".raw")] + ".libvhdi.raw"
    size = os.path.getsize(lv["shadow"])
    bs = lv["block_size"]
    f = chainpatch.File(lv["file"])
    ents, r, pb = f.bat_entries()
    f.close()
    spb = bs // ls
    bmsz = spb // 8
    parent_reads = {}
    garbage = 0
    bad = []
    subprocess.run(["cp", "--sparse=always", prev_view, view], check=True)
    fd = {n: os.open(p, os.O_RDONLY) for n, p in
          (("file", lv["file"]), ("sh", lv["shadow"]),
           ("psh", m["levels"][k - 1]["shadow"]), ("pv", prev_view))}
    out = os.open(view, os.O_WRONLY)
    try:
        for b in range(pb):
            e = ents[b + b // r] if b + b // r < len(ents) else 0
            st = e & 7
            eo = e & 0xFFFFFFFFFFF00000
            boff = b * bs
            blen = min(bs, size - boff)
            nsec = -(-blen // ls)
            if st == 6:
                copy_range(fd["sh"], out, boff, blen)
                continue
            si = (b // r) * (r + 1) + r
            sbe = ents[si] if si < len(ents) else 0
            bm = os.pread(fd["file"], bmsz,
                          (sbe & 0xFFFFFFFFFFF00000) + (b % r) * bmsz)
            for first, cnt, bit in bit_runs(bm, nsec):
                o = boff + first * ls
                n = min(cnt * ls, boff + blen - o)
                if n <= 0:
                    continue
                if bit and st == 7:
                    copy_range(fd["sh"], out, o, n)
                elif bit:
                    copy_range(fd["file"], out, o, n, src_off=eo + first * ls)
                    garbage += n
                elif st == 7 or st == 0:
                    # Read from the parent: the child must not have changed
                    # these sectors.
                    if os.pread(fd["sh"], n, o) != os.pread(fd["psh"], n, o):
                        bad.append("level %d block %d (%s): sectors %d+%d "
                                   "read the parent but the shadow differs"
                                   % (k, b, vd_state(st), first, cnt))
                else:
                    if st in (2, 3) and any(os.pread(fd["sh"], n, o)):
                        bad.append("level %d block %d (%s) but the shadow is "
                                   "not zero there" % (k, b, vd_state(st)))
                    if os.pread(fd["pv"], n, o) != os.pread(fd["sh"], n, o):
                        parent_reads[str(b)] = vd_state(st)
    finally:
        os.close(out)
        for x in fd.values():
            os.close(x)
    res.update({"parent_reading_blocks": parent_reads,
                "stale_bit_bytes": garbage, "inconsistent": bad[:20]})
    return view


def vd_state(st):
    return chainpatch.vd.PAYLOAD_STATES[st]


def libvhdi_views(a):
    m = json.load(open(a.manifest))
    out = []
    prev = None
    for k, lv in enumerate(m["levels"]):
        res = {"level": k}
        if k == 0:
            view = lv["shadow"][:-len(".raw")] + ".libvhdi.raw"
            subprocess.run(["cp", "--sparse=always", lv["shadow"], view],
                           check=True)
            res.update({"parent_reading_blocks": {}, "stale_bit_bytes": 0,
                        "inconsistent": []})
        else:
            view = level_view(m, k, prev, res)
        size = os.path.getsize(lv["shadow"])
        fa = os.open(view, os.O_RDONLY)
        fb = os.open(lv["shadow"], os.O_RDONLY)
        try:
            res["differs"], res["differing_sector_bytes"] = \
                diff_ranges(fa, fb, size, lv["block_size"])
        finally:
            os.close(fa)
            os.close(fb)
        res["view"] = view
        out.append(res)
        prev = view
    print(json.dumps({"levels": out}, indent=1))
    return 0


def get(a):
    m = json.load(open(a.manifest))
    v = m
    for part in a.path.split("."):
        v = v[int(part)] if isinstance(v, list) else v.get(part)
    if isinstance(v, (dict, list)):
        print(json.dumps(v))
    elif v is None:
        print("null")
    else:
        print(v)
    return 0


def main(argv):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    sp = ap.add_subparsers(dest="cmd", required=True)
    p = sp.add_parser("build")
    p.add_argument("--tidemark", required=True)
    p.add_argument("--dir", required=True)
    p.add_argument("--name", required=True)
    p.add_argument("--seed", type=int, required=True)
    p.add_argument("--logical-sector", type=int, default=512,
                   choices=[512, 4096])
    p.add_argument("--size", required=True)
    p.add_argument("--block-sizes", required=True)
    p.add_argument("--base", default="dynamic", choices=["dynamic", "fixed"])
    p.add_argument("--ops", type=int, default=12)
    p.add_argument("--level-ops", help="operations per level, a comma "
                   "list (missing levels: --ops)")
    p.add_argument("--boundary", action="store_true")
    p.set_defaults(fn=build)
    p = sp.add_parser("libvhdi-views")
    p.add_argument("manifest")
    p.set_defaults(fn=libvhdi_views)
    p = sp.add_parser("get")
    p.add_argument("manifest")
    p.add_argument("path")
    p.set_defaults(fn=get)
    a = ap.parse_args(argv)
    return a.fn(a)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
