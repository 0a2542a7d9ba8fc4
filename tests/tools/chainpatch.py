#!/usr/bin/python3
# SPDX-License-Identifier: MIT
"""chainpatch.py - edits the differencing-disk structures of a VHDX in place.

Written from MS-VHDX (reference/vhdx-format.md sections 6-8) on top of
vhdxdump.py's decoder, sharing no code with lib/vhdx.  Metadata items carry
no checksum, so edits of the metadata region are plain overwrites (nothing
is recomputed); the file must have an empty log (LogGuid zero), which every
cleanly closed tidemark file has.  Headers are never touched.

    chainpatch.py show FILE
        the locator (type, keys, values), HasParent, the current
        DataWriteGuid, as JSON
    chainpatch.py dwg FILE
        the current header's DataWriteGuid ("{...}" lower case, the form of
        a locator's parent_linkage that every reader parses)
    chainpatch.py locator [--keep] FILE KEY=VALUE ... [-KEY ...]
        rewrites the locator with these keys (--keep: start from the present
        keys; KEY= sets an empty value; -KEY deletes a key); VALUE may name
        another file as @dwg:PATH (its DataWriteGuid in braces, lower case)
        or @DWG:PATH (upper case)
    chainpatch.py locator-raw FILE HEX|random:N|empty
        replaces the locator item's bytes (random:N: N deterministic
        pseudo-random bytes; empty: offset 0 length 0)
    chainpatch.py locator-count FILE N
        sets KeyValueCount only
    chainpatch.py locator-type FILE GUID
        sets the LocatorType GUID only
    chainpatch.py locator-offsets FILE
        points the first key/value entry's value past the item's end
    chainpatch.py locator-remove FILE
        deletes the locator's metadata table entry (HasParent stays)
    chainpatch.py has-parent FILE 0|1
    chainpatch.py logical-sector FILE N
    chainpatch.py virtual-size FILE N
    chainpatch.py bat FILE BLOCK STATE [OFFSET_MB]
        sets a payload block's BAT entry (STATE a number or a name:
        not_present undefined zero unmapped fully partially)
    chainpatch.py states FILE
        every payload block's state, as JSON {"block": state name} for
        the blocks not NOT_PRESENT, plus "sb" for the sector bitmap entries
    chainpatch.py mkchild SHELL PARENT [--relative P] [--absolute P]
                  [--state BLK:NAME] [--partial BLK:SECTOR:COUNT] ...
        fixture builder (reference 12.5): turns a dynamic file SHELL into a
        child of PARENT: HasParent, a locator (parent_linkage = PARENT's
        DataWriteGuid, relative_path default ".\\<basename>"), block states,
        PARTIALLY_PRESENT blocks with sector bitmaps appended at EOF.  SHELL
        keeps its own VirtualDiskId; nothing goes through the log.

Exit 0, 1 on a file this tool cannot patch, 2 usage.
"""

import argparse
import json
import os
import random
import struct
import sys
import uuid

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import vhdxdump as vd  # noqa: E402

MiB = vd.MiB
STATE_NAMES = {"not_present": 0, "undefined": 1, "zero": 2, "unmapped": 3,
               "fully": 6, "partially": 7}


def die(msg):
    print("chainpatch: %s" % msg, file=sys.stderr)
    sys.exit(1)


def guid_braced(s, upper=False):
    """'{...}' lower case: libvhdi 20210425 parses a parent_linkage only in
    this form (upper case reads as the zero GUID)."""
    g = "{%s}" % str(uuid.UUID(s))
    return g.upper() if upper else g


class File:
    """An open VHDX and the offsets of its metadata."""

    def __init__(self, path):
        self.path = path
        self.r = vd.dump(path)
        hdr = vd.current(self.r)
        if hdr is None:
            die("%s: no valid header" % path)
        if not hdr["log_guid_zero"]:
            die("%s: the log is not empty (LogGuid set)" % path)
        self.hdr = hdr
        md = self.r["metadata"]
        if md is None:
            die("%s: no metadata region" % path)
        self.md = md
        self.moff = md["offset"]
        self.mlen = md["length"]
        self.f = open(path, "r+b")
        tbl = self.pread(self.moff, vd.META_TABLE_BYTES)
        n = vd.u16(tbl, 10)
        self.items = []
        for i in range(n):
            o = 32 + 32 * i
            g = bytes(tbl[o:o + 16])
            io, il, fl, rs = struct.unpack_from("<IIII", tbl, o + 16)
            self.items.append([g, io, il, fl, rs])

    def pread(self, off, n):
        self.f.seek(off)
        return self.f.read(n)

    def pwrite(self, off, data):
        self.f.seek(off)
        self.f.write(data)

    def close(self):
        self.f.close()

    # -- metadata table --------------------------------------------------

    def find(self, g):
        for it in self.items:
            if it[0] == g and not it[3] & 1:
                return it
        return None

    def write_table(self):
        t = bytearray(self.pread(self.moff, vd.META_TABLE_BYTES))
        t[32:] = bytes(vd.META_TABLE_BYTES - 32)
        struct.pack_into("<H", t, 10, len(self.items))
        for i, (g, io, il, fl, rs) in enumerate(self.items):
            o = 32 + 32 * i
            t[o:o + 16] = g
            struct.pack_into("<IIII", t, o + 16, io, il, fl, rs)
        self.pwrite(self.moff, bytes(t))

    def item_bytes(self, g):
        it = self.find(g)
        if it is None:
            return None
        return self.pread(self.moff + it[1], it[2])

    def put_item(self, g, data, flags=0x4):
        """Stores data as item g: in place when it fits, else after the
        last item (8-byte aligned).  Empty data: offset 0, length 0."""
        it = self.find(g)
        if it is None:
            it = [g, 0, 0, flags, 0]
            self.items.append(it)
        if not data:
            if it[2]:
                self.pwrite(self.moff + it[1], bytes(it[2]))
            it[1] = it[2] = 0
        elif it[2] and len(data) <= it[2]:
            self.pwrite(self.moff + it[1], data + bytes(it[2] - len(data)))
            it[2] = len(data)
        else:
            if it[2]:
                self.pwrite(self.moff + it[1], bytes(it[2]))
            end = max([vd.META_TABLE_BYTES] +
                      [x[1] + x[2] for x in self.items if x is not it])
            off = (end + 7) // 8 * 8
            if off + len(data) > self.mlen:
                die("%s: no room for a %d-byte item" % (self.path, len(data)))
            self.pwrite(self.moff + off, data)
            it[1], it[2] = off, len(data)
        self.write_table()

    def remove_item(self, g):
        it = self.find(g)
        if it is None:
            die("%s: no such item" % self.path)
        self.items.remove(it)
        self.write_table()

    def item_put(self, g, fmt, *vals):
        it = self.find(g)
        if it is None:
            die("%s: item %s missing" % (self.path, vd.guid_str(g)))
        self.pwrite(self.moff + it[1], struct.pack(fmt, *vals))

    def item_get(self, g, fmt):
        it = self.find(g)
        return struct.unpack(fmt, self.pread(self.moff + it[1],
                                             struct.calcsize(fmt)))

    # -- locator ----------------------------------------------------------

    def locator_entries(self):
        loc = self.md.get("parent_locator")
        return dict(loc["entries"]) if loc else {}

    def set_has_parent(self, on):
        bs, fl = self.item_get(vd.GUID_FILE_PARAMS, "<II")
        fl = (fl | 2) if on else (fl & ~2)
        self.item_put(vd.GUID_FILE_PARAMS, "<II", bs, fl)

    # -- BAT --------------------------------------------------------------

    def geometry(self):
        bat = self.r["bat"]
        return bat["offset"], bat["chunk_ratio"], bat["payload_blocks"]

    def bat_get(self, idx):
        off, _, _ = self.geometry()
        return struct.unpack("<Q", self.pread(off + 8 * idx, 8))[0]

    def bat_put(self, idx, val):
        off, _, _ = self.geometry()
        self.pwrite(off + 8 * idx, struct.pack("<Q", val))

    def bat_entries(self):
        off, r, pb = self.geometry()
        n = self.r["bat"]["length"] // 8
        raw = self.pread(off, 8 * n)
        return struct.unpack("<%dQ" % (len(raw) // 8), raw), r, pb


def build_locator(pairs, type_guid=vd.GUID_LOCATOR_VHDX):
    """Locator item bytes from [(key, value)] (MS-VHDX 2.6.2.6.1)."""
    n = len(pairs)
    head = bytearray(type_guid + struct.pack("<HH", 0, n))
    ents = bytearray()
    blob = bytearray()
    base = 20 + 12 * n
    for k, v in pairs:
        kb = k.encode("utf-16-le")
        vb = v.encode("utf-16-le")
        ko = base + len(blob)
        blob += kb
        vo = base + len(blob)
        blob += vb
        ents += struct.pack("<IIHH", ko, vo, len(kb), len(vb))
    return bytes(head + ents + blob)


def dwg_of(path, upper=False):
    r = vd.dump(path, want_list=False)
    h = vd.current(r)
    if h is None:
        die("%s: no valid header" % path)
    return guid_braced(h["data_write_guid"], upper)


def expand(v):
    if v.startswith("@dwg:"):
        return dwg_of(v[5:])
    if v.startswith("@DWG:"):
        return dwg_of(v[5:], upper=True)
    return v


def parse_state(s):
    if s.isdigit():
        return int(s)
    if s not in STATE_NAMES:
        die("unknown state %r" % s)
    return STATE_NAMES[s]


# ---- commands --------------------------------------------------------------


def cmd_show(a):
    f = File(a.file)
    loc = f.md.get("parent_locator")
    out = {"has_parent": bool(f.md.get("has_parent")),
           "data_write_guid": f.hdr["data_write_guid"],
           "locator": None}
    if loc is not None:
        out["locator"] = {"type_ok": loc["type_ok"],
                          "entries": loc["entries"],
                          "linkage": loc.get("linkage"),
                          "linkage2": loc.get("linkage2"),
                          "problems": loc["problems"]}
    print(json.dumps(out, indent=1, sort_keys=True))


def cmd_dwg(a):
    print(dwg_of(a.file))


def cmd_locator(a):
    f = File(a.file)
    ents = f.locator_entries() if a.keep else {}
    for kv in a.kv:
        if kv.startswith("-") and "=" not in kv:
            ents.pop(kv[1:], None)
            continue
        if "=" not in kv:
            die("expected KEY=VALUE or -KEY, got %r" % kv)
        k, v = kv.split("=", 1)
        ents[k] = expand(v)
    f.put_item(vd.GUID_PARENT_LOCATOR, build_locator(list(ents.items())))
    f.close()


def cmd_locator_raw(a):
    f = File(a.file)
    if a.data == "empty":
        data = b""
    elif a.data.startswith("random:"):
        rnd = random.Random(1234)
        data = bytes(rnd.randrange(256) for _ in range(int(a.data[7:])))
    else:
        data = bytes.fromhex(a.data)
    f.put_item(vd.GUID_PARENT_LOCATOR, data)
    f.close()


def locator_item(f):
    it = f.find(vd.GUID_PARENT_LOCATOR)
    if it is None or it[2] < 20:
        die("%s: no locator to patch" % f.path)
    return it


def cmd_locator_count(a):
    f = File(a.file)
    it = locator_item(f)
    f.pwrite(f.moff + it[1] + 18, struct.pack("<H", a.n))
    f.close()


def cmd_locator_type(a):
    f = File(a.file)
    it = locator_item(f)
    f.pwrite(f.moff + it[1], vd.guid_bytes(a.guid))
    f.close()


def cmd_locator_offsets(a):
    f = File(a.file)
    it = locator_item(f)
    # Entry 0's ValueOffset far past the item (and the metadata region).
    f.pwrite(f.moff + it[1] + 20 + 4, struct.pack("<I", 0x7FFFFFF0))
    f.close()


def cmd_locator_remove(a):
    f = File(a.file)
    f.remove_item(vd.GUID_PARENT_LOCATOR)
    f.close()


def cmd_has_parent(a):
    f = File(a.file)
    f.set_has_parent(a.on == "1")
    f.close()


def cmd_logical_sector(a):
    f = File(a.file)
    f.item_put(vd.GUID_LOGICAL_SECTOR, "<I", a.n)
    f.close()


def cmd_virtual_size(a):
    f = File(a.file)
    f.item_put(vd.GUID_VIRTUAL_SIZE, "<Q", a.n)
    f.close()


def cmd_bat(a):
    f = File(a.file)
    _, r, pb = f.geometry()
    if a.block >= pb:
        die("block %d >= %d blocks" % (a.block, pb))
    f.bat_put(a.block + a.block // r,
              (a.offset_mb << 20) | parse_state(a.state))
    f.close()


def block_states(path):
    """({block: state name} for blocks not NOT_PRESENT, {chunk: SB state
    name}) of a file."""
    f = File(path)
    ents, r, pb = f.bat_entries()
    f.close()
    out = {}
    for b in range(pb):
        i = b + b // r
        st = ents[i] & 7 if i < len(ents) else 0
        if st:
            out[b] = vd.PAYLOAD_STATES[st]
    sb = {}
    for k in range(vd.ceil_div(pb, r)):
        i = k * (r + 1) + r
        st = ents[i] & 7 if i < len(ents) else 0
        sb[k] = vd.sb_state_name(st)
    return out, sb


def cmd_states(a):
    st, sb = block_states(a.file)
    print(json.dumps({"blocks": {str(k): v for k, v in st.items()},
                      "sb": {str(k): v for k, v in sb.items()}},
                     sort_keys=True))


def cmd_mkchild(a):
    f = File(a.shell)
    if f.md.get("has_parent") or f.md.get("leave_block_allocated"):
        die("%s: must be a dynamic file" % a.shell)
    ls = f.md["logical_sector"]
    bs = f.md["block_size"]
    pairs = [("parent_linkage", dwg_of(a.parent))]
    rel = a.relative
    if rel is None and a.absolute is None:
        rel = ".\\" + os.path.basename(a.parent)
    if rel is not None:
        pairs.append(("relative_path", rel))
    if a.absolute is not None:
        pairs.append(("absolute_win32_path", a.absolute))
    f.set_has_parent(True)
    f.put_item(vd.GUID_PARENT_LOCATOR, build_locator(pairs))
    _, r, pb = f.geometry()
    for s in a.state:
        blk, name = s.split(":")
        blk = int(blk)
        f.bat_put(blk + blk // r, parse_state(name))
    bitmaps = {}
    spb = bs // ls                       # sectors per block
    for p in a.partial:
        blk, sec, cnt = (int(x) for x in p.split(":"))
        e = f.bat_get(blk + blk // r)
        if e & 7 not in (6, 7):
            die("block %d is not present in the shell" % blk)
        if sec + cnt > spb:
            die("sectors past the block")
        f.bat_put(blk + blk // r, (e & ~7) | 7)
        chunk = blk // r
        bm = bitmaps.setdefault(chunk, bytearray(MiB))
        first = (blk % r) * spb + sec
        for i in range(first, first + cnt):
            bm[i >> 3] |= 1 << (i & 7)
    for chunk, bm in sorted(bitmaps.items()):
        f.f.seek(0, 2)
        end = vd.ceil_div(f.f.tell(), MiB) * MiB
        f.pwrite(end, bytes(bm))
        f.bat_put(chunk * (r + 1) + r, end | 6)
    f.close()


def main(argv):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    sp = ap.add_subparsers(dest="cmd", required=True)
    p = sp.add_parser("show")
    p.add_argument("file")
    p.set_defaults(fn=cmd_show)
    p = sp.add_parser("dwg")
    p.add_argument("file")
    p.set_defaults(fn=cmd_dwg)
    p = sp.add_parser("locator")
    p.add_argument("file")
    p.add_argument("--keep", action="store_true")
    p.add_argument("kv", nargs="*")
    p.set_defaults(fn=cmd_locator)
    p = sp.add_parser("locator-raw")
    p.add_argument("file")
    p.add_argument("data")
    p.set_defaults(fn=cmd_locator_raw)
    p = sp.add_parser("locator-count")
    p.add_argument("file")
    p.add_argument("n", type=int)
    p.set_defaults(fn=cmd_locator_count)
    p = sp.add_parser("locator-type")
    p.add_argument("file")
    p.add_argument("guid")
    p.set_defaults(fn=cmd_locator_type)
    p = sp.add_parser("locator-offsets")
    p.add_argument("file")
    p.set_defaults(fn=cmd_locator_offsets)
    p = sp.add_parser("locator-remove")
    p.add_argument("file")
    p.set_defaults(fn=cmd_locator_remove)
    p = sp.add_parser("has-parent")
    p.add_argument("file")
    p.add_argument("on", choices=["0", "1"])
    p.set_defaults(fn=cmd_has_parent)
    p = sp.add_parser("logical-sector")
    p.add_argument("file")
    p.add_argument("n", type=int)
    p.set_defaults(fn=cmd_logical_sector)
    p = sp.add_parser("virtual-size")
    p.add_argument("file")
    p.add_argument("n", type=int)
    p.set_defaults(fn=cmd_virtual_size)
    p = sp.add_parser("bat")
    p.add_argument("file")
    p.add_argument("block", type=int)
    p.add_argument("state")
    p.add_argument("offset_mb", type=int, nargs="?", default=0)
    p.set_defaults(fn=cmd_bat)
    p = sp.add_parser("states")
    p.add_argument("file")
    p.set_defaults(fn=cmd_states)
    p = sp.add_parser("mkchild")
    p.add_argument("shell")
    p.add_argument("parent")
    p.add_argument("--relative")
    p.add_argument("--absolute")
    p.add_argument("--state", action="append", default=[])
    p.add_argument("--partial", action="append", default=[])
    p.set_defaults(fn=cmd_mkchild)
    a = ap.parse_args(argv)
    a.fn(a)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
