#!/usr/bin/python3
# SPDX-License-Identifier: MIT
"""corrupt.py - the corrupt-file catalogue (reference section 14).

    corrupt.py BASE.vhdx OUTDIR

BASE is a clean dynamic VHDX (tidemark- or QEMU-made) with at least two
present blocks.  Writes OUTDIR/case_NN.vhdx, one per mutation, and
OUTDIR/manifest.json, a list of:

  name        what was done (files are numbered so that no keyword of an
              error message can come from the file name)
  file        path of the mutated file
  desc        one line
  expect      "ok": info and cat must succeed; "error": they must fail
              with exit 1 and one stderr line holding one of 'keywords'
              (case-insensitive; the file's path is removed first)
  lazy        null: info, cat and check must all fail.  "info": the damage
              is in one BAT entry, seen when its block is read: info may
              succeed (if it fails, as an error case), cat and check must
              fail.  "check": only a scan of the whole BAT sees it (blocks
              sharing space): info and cat may succeed, check must fail
  check_rc    0 or 1: what 'vhd check' must return; null = 0 or 1
  content     "base": cat equals the base's content, with zero_ranges
              ([[virtual offset, length]...]) cleared; null: not compared

Exit 0, or 1 when BASE is not usable.
"""

import json
import os
import struct
import sys
import uuid

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import vhdxdump as vd  # noqa: E402
import mkdirty  # noqa: E402

MiB = vd.MiB
TiB = vd.TiB

KW_HEADER = ["header"]
KW_REGION = ["region"]
KW_META = ["metadata"]
KW_TRUNC = ["truncated", "end of file", "eof", "short", "past", "beyond"]
KW_BAT = ["bat", "block"]
KW_REQUIRED = ["required", "unknown", "unsupported"]
KW_LOG = ["log"]


def die(msg):
    print("corrupt: %s" % msg, file=sys.stderr)
    sys.exit(1)


class Base:
    """The base file in memory plus the facts the mutations need."""

    def __init__(self, path):
        self.path = path
        with open(path, "rb") as f:
            self.data = f.read()
        r = vd.dump(path)
        if r["problems"]:
            die("base file has problems: %s" % r["problems"])
        if r["metadata"].get("has_parent"):
            die("base file must not be differencing")
        self.r = r
        self.size = len(self.data)
        self.cur = r["current_header"] - 1
        self.hdr = r["headers"][self.cur]
        rt = r["region_tables"][r["region_table_used"] - 1]
        self.regions = {e["name"]: e for e in rt["entries"]}
        self.md = r["metadata"]
        self.meta_off = self.regions["metadata"]["offset"]
        self.meta_len = self.regions["metadata"]["length"]
        self.bat = r["bat"]
        self.bat_off = self.bat["offset"]
        self.bs = self.md["block_size"]
        self.vsize = self.md["virtual_size"]
        self.ls = self.md["logical_sector"]
        self.R = self.bat["chunk_ratio"]
        self.present = sorted(self.bat["present_blocks"],
                              key=lambda b: b["offset"])
        if len(self.present) < 2:
            die("base file needs at least two present blocks")
        self.log_off = self.hdr["log_offset"]
        self.log_len = self.hdr["log_length"]
        if self.md.get("leave_block_allocated"):
            die("base file must be dynamic")
        np = [b for b in range(self.bat["payload_blocks"])
              if b not in {p["block"] for p in self.present}]
        if not np:
            die("base file needs a block that is not present")
        self.absent = np[0]


# ---- byte-level editors on a bytearray ----------------------------------


def put(b, off, fmt, *vals):
    end = off + struct.calcsize(fmt)
    if end > len(b):
        b.extend(bytes(end - len(b)))
    struct.pack_into(fmt, b, off, *vals)


def get(b, off, fmt):
    return struct.unpack_from(fmt, b, off)


def recrc(b, off, length):
    b[off + 4:off + 8] = b"\0\0\0\0"
    struct.pack_into("<I", b, off + 4, vd.crc32c(bytes(b[off:off + length])))


def edit_headers(b, slots=(0, 1), **fields):
    """Sets header fields (seq, log_guid, log_version, version, log_length,
    log_offset, file_write_guid) in the given slots and re-CRCs them."""
    fmt = {"seq": (8, "<Q"), "log_version": (64, "<H"),
           "version": (66, "<H"), "log_length": (68, "<I"),
           "log_offset": (72, "<Q")}
    for s in slots:
        o = vd.HEADER_OFFS[s]
        for k, v in fields.items():
            if k in fmt:
                put(b, o + fmt[k][0], fmt[k][1], v)
            elif k == "log_guid":
                b[o + 48:o + 64] = v
            elif k == "file_write_guid":
                b[o + 16:o + 32] = v
            else:
                raise KeyError(k)
        recrc(b, o, vd.HEADER_BYTES)


def rt_entries(b, slot=0):
    o = vd.RT_OFFS[slot]
    n = get(b, o + 8, "<I")[0]
    out = []
    for i in range(n):
        e = o + 16 + 32 * i
        out.append([bytes(b[e:e + 16]), get(b, e + 16, "<Q")[0],
                    get(b, e + 24, "<I")[0], get(b, e + 28, "<I")[0]])
    return out


def write_rts(b, entries, slots=(0, 1), count=None):
    for s in slots:
        o = vd.RT_OFFS[s]
        b[o:o + vd.RT_BYTES] = bytes(vd.RT_BYTES)
        b[o:o + 4] = b"regi"
        put(b, o + 8, "<I", len(entries) if count is None else count)
        for i, (g, off, ln, fl) in enumerate(entries):
            e = o + 16 + 32 * i
            b[e:e + 16] = g
            put(b, e + 16, "<QII", off, ln, fl)
        recrc(b, o, vd.RT_BYTES)


def rt_set(b, name, **kw):
    g = vd.GUID_BAT if name == "BAT" else vd.GUID_METADATA
    ents = rt_entries(b)
    for e in ents:
        if e[0] == g:
            if "offset" in kw:
                e[1] = kw["offset"]
            if "length" in kw:
                e[2] = kw["length"]
    write_rts(b, ents)


class Meta:
    """Edits the metadata table of a file image in place."""

    def __init__(self, base, b):
        self.b = b
        self.off = base.meta_off
        self.len = base.meta_len
        n = get(b, self.off + 10, "<H")[0]
        self.items = []
        for i in range(n):
            e = self.off + 32 + 32 * i
            g = bytes(b[e:e + 16])
            io, il, fl, rs = get(b, e + 16, "<IIII")
            self.items.append([g, io, il, fl, rs])

    def find(self, g):
        for it in self.items:
            if it[0] == g and not it[3] & 1:
                return it
        raise KeyError(vd.guid_str(g))

    def free_off(self, length):
        end = max([vd.META_TABLE_BYTES] + [it[1] + it[2]
                                           for it in self.items])
        return (end + 7) // 8 * 8

    def add(self, g, off, ln, flags, data=None):
        self.items.append([g, off, ln, flags, 0])
        if data is not None:
            self.b[self.off + off:self.off + off + len(data)] = data

    def item_put(self, g, fmt, *vals):
        it = self.find(g)
        put(self.b, self.off + it[1], fmt, *vals)

    def write(self, count=None):
        t = self.off
        self.b[t + 32:t + vd.META_TABLE_BYTES] = \
            bytes(vd.META_TABLE_BYTES - 32)
        put(self.b, t + 10, "<H",
            len(self.items) if count is None else count)
        for i, (g, io, il, fl, rs) in enumerate(self.items):
            e = t + 32 + 32 * i
            self.b[e:e + 16] = g
            put(self.b, e + 16, "<IIII", io, il, fl, rs)


def bat_index(base, blk):
    return blk + blk // base.R


def bat_get(base, b, idx):
    return get(b, base.bat_off + 8 * idx, "<Q")[0]


def bat_put(base, b, idx, val):
    put(b, base.bat_off + 8 * idx, "<Q", val)


def end_mb(b):
    return vd.ceil_div(len(b), MiB) * MiB


def log_write(base, b, entry, pos=0):
    for i in range(0, len(entry), vd.LOG_SECTOR):
        p = base.log_off + (pos + i) % base.log_len
        b[p:p + vd.LOG_SECTOR] = entry[i:i + vd.LOG_SECTOR]


def bat_sector(base, b, zero_entries=False):
    """(file offset, 4 KiB) of the BAT's first sector, optionally with all
    its entries cleared (blocks become NOT_PRESENT)."""
    o = base.bat_off
    s = bytes(b[o:o + vd.LOG_SECTOR])
    if zero_entries:
        s = bytes(vd.LOG_SECTOR)
    return o, s


# ---- the catalogue ------------------------------------------------------

CASES = []


def case(name, expect, keywords=None, check_rc=None, content=None,
         lazy=None):
    def deco(fn):
        CASES.append(dict(name=name, expect=expect,
                          keywords=keywords or [], check_rc=check_rc,
                          content=content, lazy=lazy, fn=fn,
                          desc=(fn.__doc__ or "").strip()))
        return fn
    return deco


def flip(b, off):
    b[off] ^= 0x01


@case("hdr1_bad_crc", "ok", check_rc=None, content="base")
def _(B, b):
    """one byte of header 1 flipped: fall back to header 2"""
    flip(b, vd.HEADER_OFFS[0] + 200)


@case("hdr2_bad_crc", "ok", check_rc=None, content="base")
def _(B, b):
    """one byte of header 2 flipped: fall back to header 1"""
    flip(b, vd.HEADER_OFFS[1] + 200)


@case("hdr_current_bad_signature", "ok", check_rc=None, content="base")
def _(B, b):
    """current header's signature broken: the other one is used"""
    b[vd.HEADER_OFFS[B.cur]] ^= 0x20


@case("hdr_both_bad_crc", "error", KW_HEADER, 1)
def _(B, b):
    """both headers' checksums wrong"""
    flip(b, vd.HEADER_OFFS[0] + 200)
    flip(b, vd.HEADER_OFFS[1] + 200)


@case("hdr_equal_seq_identical", "ok", check_rc=None, content="base")
def _(B, b):
    """header 2 is a byte copy of the current header (Disk2vhd tie)"""
    c = vd.HEADER_OFFS[B.cur]
    h = bytes(b[c:c + vd.HEADER_BYTES])
    for o in vd.HEADER_OFFS:
        b[o:o + vd.HEADER_BYTES] = h


@case("hdr_equal_seq_different", "error", KW_HEADER, 1)
def _(B, b):
    """both headers valid, same sequence number, different FileWriteGuid"""
    c = vd.HEADER_OFFS[B.cur]
    h = bytes(b[c:c + vd.HEADER_BYTES])
    for o in vd.HEADER_OFFS:
        b[o:o + vd.HEADER_BYTES] = h
    edit_headers(b, slots=(1 - B.cur,), file_write_guid=uuid.uuid4().bytes)


@case("hdr_version_2", "error", ["version", "header"], 1)
def _(B, b):
    """Version = 2 in both headers"""
    edit_headers(b, version=2)


@case("hdr_logversion_1_log_guid_set", "error", ["log", "version"], 1)
def _(B, b):
    """LogVersion = 1 with a non-zero LogGuid in both headers"""
    edit_headers(b, log_version=1, log_guid=uuid.uuid4().bytes)


@case("hdr_logversion_1_log_guid_zero", "ok", check_rc=None, content="base")
def _(B, b):
    """LogVersion = 1 with LogGuid zero: the log is never read, accept"""
    edit_headers(b, log_version=1)


@case("hdr_log_overlaps_bat", "error", ["overlap", "log"], 1)
def _(B, b):
    """the headers' log offset is the BAT region's offset"""
    edit_headers(b, log_offset=B.bat_off)


@case("hdr_log_misaligned", "error", ["log", "align", "header"], 1)
def _(B, b):
    """log offset not a multiple of 1 MiB"""
    edit_headers(b, log_offset=B.log_off + 4096)


@case("fti_bad_signature", "error",
      ["signature", "identifier", "not a vhdx", "vhdxfile"], 1)
def _(B, b):
    """'vhdxfile' signature broken"""
    b[0:8] = b"vhdxfilX"


@case("rt1_bad_crc", "ok", check_rc=None, content="base")
def _(B, b):
    """region table 1 checksum wrong, table 2 intact"""
    flip(b, vd.RT_OFFS[0] + 9000)


@case("rt2_bad_crc", "ok", check_rc=None, content="base")
def _(B, b):
    """region table 2 checksum wrong, table 1 intact"""
    flip(b, vd.RT_OFFS[1] + 9000)


@case("rt_both_bad_crc", "error", KW_REGION, 1)
def _(B, b):
    """both region tables' checksums wrong"""
    flip(b, vd.RT_OFFS[0] + 9000)
    flip(b, vd.RT_OFFS[1] + 9000)


@case("rt_overlap", "error", ["overlap", "region"], 1)
def _(B, b):
    """metadata region placed over the BAT region (both tables)"""
    rt_set(b, "metadata", offset=B.bat_off)


@case("rt_misaligned", "error", ["align", "region", "bat"], 1)
def _(B, b):
    """BAT region offset + 4 KiB (both tables)"""
    rt_set(b, "BAT", offset=B.bat_off + 4096)


@case("rt_past_eof", "error", KW_REGION + KW_META + KW_TRUNC, 1)
def _(B, b):
    """metadata region beyond the end of the file (both tables)"""
    rt_set(b, "metadata", offset=end_mb(b) + 64 * MiB)


@case("rt_unknown_required", "error", KW_REQUIRED, 1)
def _(B, b):
    """third region with an unknown GUID and Required = 1"""
    off = end_mb(b)
    b.extend(bytes(off + MiB - len(b)))
    write_rts(b, rt_entries(b) + [[uuid.uuid4().bytes, off, MiB, 1]])


@case("rt_unknown_optional", "ok", check_rc=0, content="base")
def _(B, b):
    """third region with an unknown GUID and Required = 0"""
    off = end_mb(b)
    b.extend(bytes(off + MiB - len(b)))
    write_rts(b, rt_entries(b) + [[uuid.uuid4().bytes, off, MiB, 0]])


@case("rt_missing_bat", "error", ["bat", "region", "missing"], 1)
def _(B, b):
    """region tables list only the metadata region"""
    write_rts(b, [e for e in rt_entries(b) if e[0] != vd.GUID_BAT])


@case("rt_count_5000", "error", KW_REGION, 1)
def _(B, b):
    """region entry count 5000 (> 2047) in both tables"""
    write_rts(b, rt_entries(b), count=5000)


@case("md_bad_signature", "error", KW_META, 1)
def _(B, b):
    """metadata table signature broken"""
    b[B.meta_off] ^= 0x20


@case("md_count_60000", "error", KW_META, 1)
def _(B, b):
    """metadata entry count 60000 (> 2047)"""
    m = Meta(B, b)
    m.write(count=60000)


@case("md_item_overlap", "error", ["overlap", "metadata"], 1)
def _(B, b):
    """a user item overlapping the virtual disk size item"""
    m = Meta(B, b)
    vs = m.find(vd.GUID_VIRTUAL_SIZE)
    m.add(uuid.uuid4().bytes, vs[1], 8, 0x1)
    m.write()


@case("md_item_past_region", "error", KW_META + ["item"], 1)
def _(B, b):
    """a user item running past the end of the metadata region"""
    m = Meta(B, b)
    m.add(uuid.uuid4().bytes, B.meta_len - 4, 8, 0x1)
    m.write()


@case("md_unknown_required", "error", KW_REQUIRED, 1)
def _(B, b):
    """system item with an unknown GUID and IsRequired"""
    m = Meta(B, b)
    m.add(uuid.uuid4().bytes, m.free_off(8), 8, 0x4, b"12345678")
    m.write()


@case("md_unknown_optional", "ok", check_rc=0, content="base")
def _(B, b):
    """system item with an unknown GUID, not required"""
    m = Meta(B, b)
    m.add(uuid.uuid4().bytes, m.free_off(8), 8, 0x0, b"12345678")
    m.write()


@case("md_user_item", "ok", check_rc=0, content="base")
def _(B, b):
    """a user metadata item (IsUser = 1)"""
    m = Meta(B, b)
    m.add(uuid.uuid4().bytes, m.free_off(16), 16, 0x1, b"user metadata 01")
    m.write()


@case("md_block_size_3M", "error", ["block size"], 1)
def _(B, b):
    """block size 3 MiB (not a power of two)"""
    Meta(B, b).item_put(vd.GUID_FILE_PARAMS, "<I", 3 * MiB)


@case("md_block_size_512M", "error", ["block size"], 1)
def _(B, b):
    """block size 512 MiB (over 256 MiB)"""
    Meta(B, b).item_put(vd.GUID_FILE_PARAMS, "<I", 512 * MiB)


@case("md_block_size_0", "error", ["block size"], 1)
def _(B, b):
    """block size 0"""
    Meta(B, b).item_put(vd.GUID_FILE_PARAMS, "<I", 0)


@case("md_logical_sector_1000", "error", ["sector"], 1)
def _(B, b):
    """logical sector size 1000"""
    Meta(B, b).item_put(vd.GUID_LOGICAL_SECTOR, "<I", 1000)


@case("md_physical_sector_1000", "error", ["sector"], 1)
def _(B, b):
    """physical sector size 1000"""
    Meta(B, b).item_put(vd.GUID_PHYSICAL_SECTOR, "<I", 1000)


@case("md_virtual_size_0", "error", ["virtual", "disk size"], 1)
def _(B, b):
    """virtual disk size 0"""
    Meta(B, b).item_put(vd.GUID_VIRTUAL_SIZE, "<Q", 0)


@case("md_virtual_size_over_64T", "error", ["virtual", "disk size"], 1)
def _(B, b):
    """virtual disk size 64 TiB + 1 MiB"""
    Meta(B, b).item_put(vd.GUID_VIRTUAL_SIZE, "<Q", 64 * TiB + MiB)


@case("md_virtual_size_unaligned", "error",
      ["virtual", "disk size", "sector", "multiple"], 1)
def _(B, b):
    """virtual disk size not a multiple of the logical sector size"""
    Meta(B, b).item_put(vd.GUID_VIRTUAL_SIZE, "<Q", B.vsize - B.ls // 2)


@case("md_missing_file_params", "error",
      ["file parameters", "file params", "missing", "metadata"], 1)
def _(B, b):
    """the file parameters item is not in the table"""
    m = Meta(B, b)
    m.items = [it for it in m.items if it[0] != vd.GUID_FILE_PARAMS]
    m.write()


@case("md_missing_virtual_size", "error",
      ["virtual", "disk size", "missing", "metadata"], 1)
def _(B, b):
    """the virtual disk size item is not in the table"""
    m = Meta(B, b)
    m.items = [it for it in m.items if it[0] != vd.GUID_VIRTUAL_SIZE]
    m.write()


@case("md_has_parent_no_locator", "error", ["parent", "locator"], 1)
def _(B, b):
    """HasParent set but no parent locator item"""
    m = Meta(B, b)
    it = m.find(vd.GUID_FILE_PARAMS)
    o = B.meta_off + it[1] + 4
    put(b, o, "<I", get(b, o, "<I")[0] | 2)


@case("md_physical_sector_changed", "ok", check_rc=0, content="base")
def _(B, b):
    """physical sector size switched between 512 and 4096 (still valid)"""
    m = Meta(B, b)
    it = m.find(vd.GUID_PHYSICAL_SECTOR)
    o = B.meta_off + it[1]
    put(b, o, "<I", 4096 if get(b, o, "<I")[0] == 512 else 512)


@case("bat_region_too_small", "error", ["bat"], 1)
def _(B, b):
    """virtual size grown so that the BAT region cannot hold its entries"""
    need = B.bat["length"] // 8 + 1024            # entries beyond the region
    vs = need * B.bs
    vs = min(vs, 64 * TiB)
    Meta(B, b).item_put(vd.GUID_VIRTUAL_SIZE, "<Q", vs)


@case("bat_entry_past_eof", "error", KW_BAT + KW_TRUNC, 1, lazy="info")
def _(B, b):
    """an absent block made FULLY_PRESENT at 4000 MiB, far past EOF"""
    bat_put(B, b, bat_index(B, B.absent), (4000 * MiB) | 6)


@case("bat_reserved_bits", "error", KW_BAT + ["reserved"], 1,
      lazy="check")
def _(B, b):
    """reserved bits 3-19 set in a present block's entry (offset not
    1 MiB aligned if read as a byte offset)"""
    idx = B.present[0]["index"]
    bat_put(B, b, idx, bat_get(B, b, idx) | 0x8000)


@case("bat_state_4", "error", KW_BAT + ["state", "reserved"], 1, lazy="info")
def _(B, b):
    """a present block's entry in reserved state 4"""
    idx = B.present[0]["index"]
    bat_put(B, b, idx, (bat_get(B, b, idx) & ~7) | 4)


@case("bat_state_5_unmapped_v095", "ok", check_rc=None, content="base")
def _(B, b):
    """an absent block in state 5 (UNMAPPED in the 2012 draft; QEMU
    accepts it): reads zeros"""
    bat_put(B, b, bat_index(B, B.absent), 5)


@case("bat_partially_present_no_parent", "error",
      KW_BAT + ["partial", "parent", "state"], 1, lazy="info")
def _(B, b):
    """a present block in PARTIALLY_PRESENT in a file without a parent"""
    idx = B.present[0]["index"]
    bat_put(B, b, idx, (bat_get(B, b, idx) & ~7) | 7)


@case("bat_offset_zero", "error", KW_BAT + ["overlap", "header"], 1,
      lazy="info")
def _(B, b):
    """an absent block made FULLY_PRESENT at file offset 0"""
    bat_put(B, b, bat_index(B, B.absent), 6)


@case("bat_same_offset", "error",
      KW_BAT + ["overlap", "twice", "duplicate", "same"], 1, lazy="check")
def _(B, b):
    """two blocks share one file offset"""
    p0, p1 = B.present[0], B.present[1]
    bat_put(B, b, p1["index"], p0["offset"] | 6)


@case("bat_overlaps_metadata", "error", KW_BAT + ["overlap", "metadata"], 1,
      lazy="check")
def _(B, b):
    """an absent block made FULLY_PRESENT on the metadata region"""
    bat_put(B, b, bat_index(B, B.absent), B.meta_off | 6)


@case("bat_sb_present_no_parent", "error",
      KW_BAT + ["bitmap", "parent"], 1, lazy="check")
def _(B, b):
    """chunk 0's sector bitmap entry SB_BLOCK_PRESENT in a dynamic file"""
    off = end_mb(b)
    b.extend(bytes(off + MiB - len(b)))
    bat_put(B, b, B.R, off | 6)


@case("bat_last_block_cut", "ok", check_rc=1, content="base")
def _(B, b):
    """file cut in the middle of the last block: accepted, the missing part
    reads zeros (QEMU tolerates such files)"""
    last = B.present[-1]
    cut = last["offset"] + B.bs // 2
    del b[cut:]
    voff = last["block"] * B.bs + B.bs // 2
    vend = min((last["block"] + 1) * B.bs, B.vsize)
    return [[voff, vend - voff]] if vend > voff else []


def log_guid_case(B, b, entry_guid, header_guid, zero_bat=False,
                  flushed=None, last=None, break_crc=False, ndesc=None,
                  entry_len=None):
    off, s = bat_sector(B, b, zero_entries=zero_bat)
    size = len(b)
    fl = size // MiB * MiB if flushed is None else flushed
    ls = vd.ceil_div(size, MiB) * MiB if last is None else last
    e = bytearray(mkdirty.build_entry(77, 0, entry_guid, [("data", off, s)],
                                      fl, ls))
    if ndesc is not None:
        put(e, 24, "<I", ndesc)
    if entry_len is not None:
        put(e, 8, "<I", entry_len)
    if ndesc is not None or entry_len is not None:
        recrc(e, 0, len(e))
    if break_crc:
        e[4] ^= 0xFF
    log_write(B, b, bytes(e))
    edit_headers(b, log_guid=header_guid)


@case("log_replays_bat_change", "ok", check_rc=None, content="base")
def _(B, b):
    """a valid dirty log whose only entry clears the BAT's first sector:
    every block it maps reads zeros afterwards"""
    g = uuid.uuid4().bytes
    log_guid_case(B, b, g, g, zero_bat=True)
    per_sector = vd.LOG_SECTOR // 8
    return [[p["block"] * B.bs, min(B.bs, B.vsize - p["block"] * B.bs)]
            for p in B.present if p["index"] < per_sector]


@case("log_valid_noop", "ok", check_rc=None, content="base")
def _(B, b):
    """a valid dirty log rewriting the BAT's first sector unchanged"""
    g = uuid.uuid4().bytes
    log_guid_case(B, b, g, g)


@case("log_stale_entry_guid_zero", "ok", check_rc=0, content="base")
def _(B, b):
    """a valid entry that would clear the BAT, but header LogGuid is zero:
    never replay it"""
    log_guid_case(B, b, uuid.uuid4().bytes, bytes(16), zero_bat=True)


@case("log_entry_other_guid", "error", KW_LOG, 1)
def _(B, b):
    """LogGuid set, the only valid entry carries another GUID"""
    log_guid_case(B, b, uuid.uuid4().bytes, uuid.uuid4().bytes,
                  zero_bat=True)


@case("log_bad_crc", "error", KW_LOG, 1)
def _(B, b):
    """LogGuid set, the only matching entry has a bad checksum"""
    g = uuid.uuid4().bytes
    log_guid_case(B, b, g, g, zero_bat=True, break_crc=True)


@case("log_flushed_past_eof", "error", KW_TRUNC + ["flushed"], 1)
def _(B, b):
    """valid entry whose FlushedFileOffset lies 2 MiB past EOF"""
    g = uuid.uuid4().bytes
    fl = vd.ceil_div(len(b), MiB) * MiB + 2 * MiB
    log_guid_case(B, b, g, g, flushed=fl, last=fl)


@case("log_last_past_eof", "ok", check_rc=None, content="base")
def _(B, b):
    """valid no-op entry whose LastFileOffset lies 3 MiB past EOF"""
    g = uuid.uuid4().bytes
    log_guid_case(B, b, g, g, last=vd.ceil_div(len(b), MiB) * MiB + 3 * MiB)


@case("log_descriptor_count_huge", "error", KW_LOG, 1)
def _(B, b):
    """LogGuid set, entry claims 0xFFFFFFFF descriptors (CRC fixed)"""
    g = uuid.uuid4().bytes
    log_guid_case(B, b, g, g, ndesc=0xFFFFFFFF)


@case("log_entry_length_huge", "error", KW_LOG, 1)
def _(B, b):
    """LogGuid set, entry claims a length of 0xFFFFF000 (CRC fixed)"""
    g = uuid.uuid4().bytes
    log_guid_case(B, b, g, g, entry_len=0xFFFFF000)


@case("trunc_512K", "error", KW_TRUNC + KW_REGION + KW_LOG, 1)
def _(B, b):
    """file truncated to 512 KiB (header section only)"""
    del b[512 * 1024:]


@case("trunc_1536K", "error", KW_TRUNC + KW_REGION + KW_LOG, 1)
def _(B, b):
    """file truncated to 1.5 MiB"""
    del b[1536 * 1024:]


@case("trunc_zero_length", "error",
      KW_TRUNC + ["empty", "signature", "identifier", "not a vhdx"], 1)
def _(B, b):
    """zero-length file"""
    del b[:]


@case("trunc_in_header_2", "error", KW_TRUNC + KW_HEADER + KW_REGION, 1)
def _(B, b):
    """file ends in the middle of header 2 (header 1 intact)"""
    del b[vd.HEADER_OFFS[1] + 100:]


# ---- driver --------------------------------------------------------------


def write_sparse(path, data):
    """Writes data, leaving holes for all-zero 64 KiB runs."""
    step = 64 * 1024
    zero = bytes(step)
    with open(path, "wb") as f:
        for i in range(0, len(data), step):
            c = data[i:i + step]
            if c != zero[:len(c)]:
                f.seek(i)
                f.write(c)
        f.truncate(len(data))


def main(argv):
    if len(argv) != 2:
        print(__doc__, file=sys.stderr)
        return 2
    base = Base(argv[0])
    outdir = argv[1]
    os.makedirs(outdir, exist_ok=True)
    manifest = []
    for i, c in enumerate(CASES):
        b = bytearray(base.data)
        zr = c["fn"](base, b) or []
        path = os.path.join(outdir, "case_%02d.vhdx" % i)
        write_sparse(path, bytes(b))
        m = {k: c[k] for k in ("name", "expect", "keywords", "check_rc",
                               "content", "lazy", "desc")}
        m["file"] = path
        m["zero_ranges"] = zr
        manifest.append(m)
    with open(os.path.join(outdir, "manifest.json"), "w") as f:
        json.dump(manifest, f, indent=1)
    print("%d cases written to %s" % (len(manifest), outdir))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
