#!/usr/bin/python3
# SPDX-License-Identifier: MIT
"""vhdxdump.py - an independent MS-VHDX structure dumper for tidemark's tests.

Written from MS-VHDX (see reference/vhdx-format.md section 12.4), sharing no
code with lib/vhdx: CRC-32C, header pick, region tables, metadata items, BAT
census and log scan are all done here in pure Python.

    vhdxdump.py FILE                  human-readable dump
    vhdxdump.py --json FILE           the same facts as JSON
    vhdxdump.py --get PATH FILE       one field of the JSON (dotted path,
                                      list indices allowed: headers.0.seq)
    vhdxdump.py --check-canonical [--differencing] FILE
                                      assert tidemark's writer rules; prints
                                      one line per violated rule, exit 1
                                      (--differencing: the file must be a
                                      differencing disk; its rules are
                                      checked whenever HasParent is set)
    vhdxdump.py --apply-log ...       read every structure after the headers
                                      through the replayed active log
                                      sequence (in memory; file untouched)

Exit status: 0 ok, 1 canonical check failed / file unreadable, 2 usage.
Other tools in this folder (mkdirty.py, corrupt.py) import this module.
"""

import argparse
import array
import json
import os
import struct
import sys
import uuid

KiB = 1024
MiB = 1024 * 1024
GiB = 1024 * MiB
TiB = 1024 * GiB

HEADER_OFFS = (0x10000, 0x20000)
RT_OFFS = (0x30000, 0x40000)
RT_BYTES = 0x10000
HEADER_BYTES = 4096
META_TABLE_BYTES = 0x10000
LOG_SECTOR = 4096

# ---- CRC-32C (Castagnoli, reflected 0x82F63B78) --------------------------


def _crc_table():
    t = []
    for i in range(256):
        c = i
        for _ in range(8):
            c = (c >> 1) ^ (0x82F63B78 if c & 1 else 0)
        t.append(c)
    return t


_CRC_T = _crc_table()


def crc32c(data, crc=0):
    """CRC-32C of 'data' (seed ~0, final xor ~0); chainable via 'crc'."""
    c = crc ^ 0xFFFFFFFF
    t = _CRC_T
    for b in data:
        c = t[(c ^ b) & 0xFF] ^ (c >> 8)
    return c ^ 0xFFFFFFFF


def crc_with_zero_field(buf, field_off):
    """CRC-32C of buf with the 4-byte checksum field at field_off zeroed."""
    c = crc32c(buf[:field_off])
    c = crc32c(b"\0\0\0\0", c)
    return crc32c(buf[field_off + 4:], c)


assert crc32c(b"123456789") == 0xE3069283

# ---- GUIDs ---------------------------------------------------------------


def guid_str(b):
    return str(uuid.UUID(bytes_le=bytes(b)))


def guid_bytes(s):
    return uuid.UUID(s).bytes_le


ZERO_GUID = bytes(16)

GUID_BAT = guid_bytes("2DC27766-F623-4200-9D64-115E9BFD4A08")
GUID_METADATA = guid_bytes("8B7CA206-4790-4B9A-B8FE-575F050F886E")
GUID_FILE_PARAMS = guid_bytes("CAA16737-FA36-4D43-B3B6-33F0AA44E76B")
GUID_VIRTUAL_SIZE = guid_bytes("2FA54224-CD1B-4876-B211-5DBED83BF4B8")
GUID_VDISK_ID = guid_bytes("BECA12AB-B2E6-4523-93EF-C309E000C746")
GUID_LOGICAL_SECTOR = guid_bytes("8141BF1D-A96F-4709-BA47-F233A8FAAB5F")
GUID_PHYSICAL_SECTOR = guid_bytes("CDA348C7-445D-4471-9CC9-E9885251C556")
GUID_PARENT_LOCATOR = guid_bytes("A8D35F2D-B30B-454D-ABF7-D3D84834AB0C")
GUID_LOCATOR_VHDX = guid_bytes("B04AEFB7-D19E-4A81-B789-25B8E9445913")

REGION_NAMES = {GUID_BAT: "BAT", GUID_METADATA: "metadata"}
ITEM_NAMES = {
    GUID_FILE_PARAMS: "file_parameters",
    GUID_VIRTUAL_SIZE: "virtual_disk_size",
    GUID_VDISK_ID: "virtual_disk_id",
    GUID_LOGICAL_SECTOR: "logical_sector_size",
    GUID_PHYSICAL_SECTOR: "physical_sector_size",
    GUID_PARENT_LOCATOR: "parent_locator",
}
# Flag words tidemark writes (as Windows and QEMU do): bit 2 IsRequired,
# bit 1 IsVirtualDisk.
CANONICAL_ITEM_FLAGS = {
    GUID_FILE_PARAMS: 0x04,
    GUID_VIRTUAL_SIZE: 0x06,
    GUID_VDISK_ID: 0x06,
    GUID_LOGICAL_SECTOR: 0x06,
    GUID_PHYSICAL_SECTOR: 0x06,
    GUID_PARENT_LOCATOR: 0x04,
}

PAYLOAD_STATES = {0: "NOT_PRESENT", 1: "UNDEFINED", 2: "ZERO", 3: "UNMAPPED",
                  4: "RESERVED_4", 5: "UNMAPPED_V095", 6: "FULLY_PRESENT",
                  7: "PARTIALLY_PRESENT"}
SB_STATES = {0: "SB_NOT_PRESENT", 6: "SB_PRESENT"}


def sb_state_name(s):
    return SB_STATES.get(s, "SB_RESERVED_%d" % s)


def u16(b, o):
    return struct.unpack_from("<H", b, o)[0]


def u32(b, o):
    return struct.unpack_from("<I", b, o)[0]


def u64(b, o):
    return struct.unpack_from("<Q", b, o)[0]


def ceil_div(a, b):
    return -(-a // b)


# ---- file access, optionally through a replayed log ----------------------


class Image:
    """Reads a file; after set_overlay(), reads see the replayed log."""

    def __init__(self, path):
        self.path = path
        self.f = open(path, "rb")
        self.file_size = os.fstat(self.f.fileno()).st_size
        self.size = self.file_size
        self.ops = []           # (file_off, bytes or None for zeros, len)

    def raw_pread(self, off, n):
        if off >= self.file_size or n <= 0:
            return b""
        self.f.seek(off)
        return self.f.read(min(n, self.file_size - off))

    def pread(self, off, n):
        """Up to n bytes at off (short at EOF), through the overlay."""
        if not self.ops:
            return self.raw_pread(off, n)
        end = min(off + n, self.size)
        if end <= off:
            return b""
        buf = bytearray(self.raw_pread(off, end - off))
        buf.extend(bytes(end - off - len(buf)))
        for o, data, ln in self.ops:
            lo = max(o, off)
            hi = min(o + ln, end)
            if lo >= hi:
                continue
            if data is None:
                buf[lo - off:hi - off] = bytes(hi - lo)
            else:
                buf[lo - off:hi - off] = data[lo - o:hi - o]
        return bytes(buf)

    def set_overlay(self, ops, size):
        self.ops = ops
        self.size = size


# ---- decoders ------------------------------------------------------------


def parse_fti(img):
    b = img.pread(0, 0x10000)
    r = {"signature_ok": b[:8] == b"vhdxfile", "creator": ""}
    if len(b) >= 520:
        raw = b[8:520]
        n = 0
        while n + 1 < len(raw) and (raw[n] or raw[n + 1]):
            n += 2
        r["creator"] = raw[:n].decode("utf-16-le", "replace")
    return r


def parse_header(buf, slot, off):
    h = {"slot": slot, "offset": off, "signature_ok": False, "crc_ok": False,
         "valid": False}
    if len(buf) < HEADER_BYTES:
        h["problem"] = "short read"
        return h
    h["signature_ok"] = buf[:4] == b"head"
    h["checksum"] = u32(buf, 4)
    h["crc_ok"] = crc_with_zero_field(buf[:HEADER_BYTES], 4) == h["checksum"]
    h["valid"] = h["signature_ok"] and h["crc_ok"]
    h["seq"] = u64(buf, 8)
    h["file_write_guid"] = guid_str(buf[16:32])
    h["data_write_guid"] = guid_str(buf[32:48])
    h["log_guid"] = guid_str(buf[48:64])
    h["log_guid_zero"] = buf[48:64] == ZERO_GUID
    h["log_version"] = u16(buf, 64)
    h["version"] = u16(buf, 66)
    h["log_length"] = u32(buf, 68)
    h["log_offset"] = u64(buf, 72)
    h["reserved_zero"] = not any(buf[80:HEADER_BYTES])
    h["_raw80"] = bytes(buf[:80])
    return h


def pick_header(h1, h2):
    """Returns (index 0/1 or None, problem or None) per MS-VHDX 2.2.2."""
    v1, v2 = h1["valid"], h2["valid"]
    if not v1 and not v2:
        return None, "no valid header"
    if v1 and not v2:
        return 0, None
    if v2 and not v1:
        return 1, None
    if h1["seq"] > h2["seq"]:
        return 0, None
    if h2["seq"] > h1["seq"]:
        return 1, None
    # Equal sequence numbers: accepted only when identical (QEMU's rule).
    if h1["_raw80"][8:] == h2["_raw80"][8:]:
        return 0, None
    return None, "headers have equal sequence numbers but differ"


def parse_region_table(buf, slot, off):
    rt = {"slot": slot, "offset": off, "signature_ok": False, "crc_ok": False,
          "valid": False, "entries": [], "problems": []}
    if len(buf) < RT_BYTES:
        rt["problems"].append("short read")
        return rt
    rt["signature_ok"] = buf[:4] == b"regi"
    rt["checksum"] = u32(buf, 4)
    rt["crc_ok"] = crc_with_zero_field(buf[:RT_BYTES], 4) == rt["checksum"]
    cnt = u32(buf, 8)
    rt["entry_count"] = cnt
    rt["reserved"] = u32(buf, 12)
    if cnt > 2047:
        rt["problems"].append("entry count %d > 2047" % cnt)
    for i in range(min(cnt, 2047)):
        o = 16 + 32 * i
        g = buf[o:o + 16]
        flags = u32(buf, o + 28)
        rt["entries"].append({
            "guid": guid_str(g), "_guid": bytes(g),
            "name": REGION_NAMES.get(bytes(g), "unknown"),
            "offset": u64(buf, o + 16), "length": u32(buf, o + 24),
            "flags": flags, "required": bool(flags & 1)})
    rt["valid"] = (rt["signature_ok"] and rt["crc_ok"] and cnt <= 2047)
    return rt


def region_problems(rt, file_size):
    """Structural problems of one decoded region table's entries."""
    probs = []
    seen = set()
    spans = []
    for e in rt["entries"]:
        if e["_guid"] in seen:
            probs.append("region %s listed twice" % e["name"])
        seen.add(e["_guid"])
        if e["offset"] % MiB or e["offset"] < MiB:
            probs.append("region %s offset %#x not 1 MiB aligned or < 1 MiB"
                         % (e["name"], e["offset"]))
        if e["length"] % MiB or e["length"] == 0:
            probs.append("region %s length %#x not a 1 MiB multiple"
                         % (e["name"], e["length"]))
        if e["offset"] + e["length"] > file_size:
            probs.append("region %s [%#x,+%#x) past end of file %#x"
                         % (e["name"], e["offset"], e["length"], file_size))
        if e["name"] == "unknown" and e["required"]:
            probs.append("unknown required region %s" % e["guid"])
        spans.append((e["offset"], e["offset"] + e["length"], e["name"]))
    spans.sort()
    for a, b in zip(spans, spans[1:]):
        if b[0] < a[1]:
            probs.append("regions %s and %s overlap" % (a[2], b[2]))
    for g in (GUID_BAT, GUID_METADATA):
        if g not in seen:
            probs.append("region %s missing" % REGION_NAMES[g])
    return probs


def parse_locator(b):
    loc = {"type": guid_str(b[0:16]) if len(b) >= 16 else None,
           "type_ok": b[0:16] == GUID_LOCATOR_VHDX, "entries": {},
           "problems": []}
    if len(b) < 20:
        loc["problems"].append("locator shorter than 20 bytes")
        return loc
    n = u16(b, 18)
    loc["key_value_count"] = n
    for i in range(n):
        o = 20 + 12 * i
        if o + 12 > len(b):
            loc["problems"].append("key/value entry %d past item" % i)
            break
        ko, vo, kl, vl = struct.unpack_from("<IIHH", b, o)
        if ko == 0 or vo == 0 or ko + kl > len(b) or vo + vl > len(b):
            loc["problems"].append("key/value %d outside item" % i)
            continue
        k = b[ko:ko + kl].decode("utf-16-le", "replace")
        v = b[vo:vo + vl].decode("utf-16-le", "replace")
        if k in loc["entries"]:
            loc["problems"].append("duplicate key %r" % k)
        loc["entries"][k] = v
    # The linkage GUIDs, normalised (compare parsed GUIDs, not strings):
    # None when the key is absent, "invalid" when it does not parse.
    for key, name in (("parent_linkage", "linkage"),
                      ("parent_linkage2", "linkage2")):
        v = loc["entries"].get(key)
        loc[name] = None if v is None else parse_guid_text(v)
    return loc


def parse_guid_text(v):
    """'{6B29FC40-CA47-1067-B31D-00DD010662DA}' (braces and case optional)
    -> the lower-case dashed form, or "invalid"."""
    t = v.strip()
    if t.startswith("{") and t.endswith("}"):
        t = t[1:-1]
    if len(t) != 36:
        return "invalid"
    try:
        return str(uuid.UUID(t))
    except ValueError:
        return "invalid"


def parse_metadata(img, off, length):
    md = {"offset": off, "length": length, "signature_ok": False,
          "items": [], "problems": []}
    tbl = img.pread(off, META_TABLE_BYTES)
    if len(tbl) < META_TABLE_BYTES:
        md["problems"].append("metadata table truncated")
        return md
    md["signature_ok"] = tbl[:8] == b"metadata"
    if not md["signature_ok"]:
        md["problems"].append("bad metadata signature")
    cnt = u16(tbl, 10)
    md["entry_count"] = cnt
    if cnt > 2047:
        md["problems"].append("metadata entry count %d > 2047" % cnt)
        cnt = 0
    spans = []
    keys = set()
    for i in range(cnt):
        o = 32 + 32 * i
        g = bytes(tbl[o:o + 16])
        ioff, ilen, flags, resv = struct.unpack_from("<IIII", tbl, o + 16)
        it = {"guid": guid_str(g), "_guid": g,
              "name": ITEM_NAMES.get(g, "unknown"), "offset": ioff,
              "length": ilen, "flags": flags, "is_user": bool(flags & 1),
              "is_virtual_disk": bool(flags & 2),
              "is_required": bool(flags & 4)}
        md["items"].append(it)
        if (g, it["is_user"]) in keys:
            md["problems"].append("item %s listed twice" % it["name"])
        keys.add((g, it["is_user"]))
        if (ioff == 0) != (ilen == 0):
            md["problems"].append("item %s: offset 0 iff length 0 violated"
                                  % it["name"])
        if ilen:
            if ioff < META_TABLE_BYTES:
                md["problems"].append("item %s inside the table" % it["name"])
            if ilen > MiB:
                md["problems"].append("item %s longer than 1 MiB"
                                      % it["name"])
            if ioff + ilen > length:
                md["problems"].append("item %s past the metadata region"
                                      % it["name"])
            spans.append((ioff, ioff + ilen, it["name"]))
        if it["name"] == "unknown" and it["is_required"] and \
                not it["is_user"]:
            md["problems"].append("unknown required item %s" % it["guid"])
        if ilen and ioff + ilen <= length:
            data = img.pread(off + ioff, min(ilen, MiB))
        else:
            data = b""
        it["_data"] = data
    spans.sort()
    for a, b in zip(spans, spans[1:]):
        if b[0] < a[1]:
            md["problems"].append("items %s and %s overlap" % (a[2], b[2]))
    # Decode the system items.
    vals = {}
    for it in md["items"]:
        if it["is_user"]:
            continue
        g, d = it["_guid"], it["_data"]
        try:
            if g == GUID_FILE_PARAMS:
                bs, fl = struct.unpack_from("<II", d, 0)
                vals["block_size"] = bs
                vals["leave_block_allocated"] = bool(fl & 1)
                vals["has_parent"] = bool(fl & 2)
                vals["file_parameters_flags"] = fl
            elif g == GUID_VIRTUAL_SIZE:
                vals["virtual_size"] = u64(d, 0)
            elif g == GUID_VDISK_ID:
                vals["virtual_disk_id"] = guid_str(d[:16])
            elif g == GUID_LOGICAL_SECTOR:
                vals["logical_sector"] = u32(d, 0)
            elif g == GUID_PHYSICAL_SECTOR:
                vals["physical_sector"] = u32(d, 0)
            elif g == GUID_PARENT_LOCATOR:
                vals["parent_locator"] = parse_locator(d)
        except struct.error:
            md["problems"].append("item %s too short" % it["name"])
    md.update(vals)
    for k, name in (("block_size", "file_parameters"),
                    ("virtual_size", "virtual_disk_size"),
                    ("virtual_disk_id", "virtual_disk_id"),
                    ("logical_sector", "logical_sector_size"),
                    ("physical_sector", "physical_sector_size")):
        if k not in vals:
            md["problems"].append("missing item %s" % name)
    bs = vals.get("block_size")
    if bs is not None and (bs < MiB or bs > 256 * MiB or bs & (bs - 1)):
        md["problems"].append("block size %d invalid" % bs)
    ls = vals.get("logical_sector")
    if ls is not None and ls not in (512, 4096):
        md["problems"].append("logical sector size %d invalid" % ls)
    ps = vals.get("physical_sector")
    if ps is not None and ps not in (512, 4096):
        md["problems"].append("physical sector size %d invalid" % ps)
    vs = vals.get("virtual_size")
    if vs is not None:
        if vs == 0 or vs > 64 * TiB:
            md["problems"].append("virtual size %d out of range" % vs)
        elif ls in (512, 4096) and vs % ls:
            md["problems"].append("virtual size %d not a multiple of the "
                                  "sector size" % vs)
    if vals.get("has_parent") and "parent_locator" not in vals:
        md["problems"].append("HasParent without a parent locator")
    return md


def geometry(block_size, virtual_size, logical_sector, has_parent):
    r = (1 << 23) * logical_sector // block_size
    pb = ceil_div(virtual_size, block_size)
    sb = ceil_div(pb, r)
    full = sb * (r + 1)
    minimum = (pb + (pb - 1) // r) if pb else 0
    return {"chunk_ratio": r, "payload_blocks": pb, "bitmap_blocks": sb,
            "entries_sb_stride": full, "entries_pb_rule": minimum,
            "entries_expected": full if has_parent else minimum}


def parse_bat(img, off, length, md, want_list=True):
    bat = {"offset": off, "length": length, "problems": [],
           "present_blocks": [], "present_bitmaps": []}
    bs = md.get("block_size")
    vs = md.get("virtual_size")
    ls = md.get("logical_sector")
    if not bs or not vs or ls not in (512, 4096) or bs & (bs - 1) or \
            bs < MiB or bs > 256 * MiB:
        bat["problems"].append("cannot size the BAT: bad metadata")
        return bat
    has_parent = bool(md.get("has_parent"))
    g = geometry(bs, vs, ls, has_parent)
    bat.update(g)
    r = g["chunk_ratio"]
    bat["region_entries"] = length // 8
    if length < 8 * g["entries_pb_rule"]:
        bat["problems"].append("BAT region holds %d entries, needs %d"
                               % (length // 8, g["entries_pb_rule"]))
    raw = img.pread(off, length)
    arr = array.array("Q")
    arr.frombytes(raw[:len(raw) - len(raw) % 8])
    if sys.byteorder != "little":
        arr.byteswap()
    n = len(arr)
    payload = {}
    sbc = {}
    reserved_bits = 0
    nonzero_off_nonpresent = 0
    pb = g["payload_blocks"]
    for blk in range(pb):
        idx = blk + blk // r
        e = arr[idx] if idx < n else 0
        st = e & 7
        name = PAYLOAD_STATES[st]
        payload[name] = payload.get(name, 0) + 1
        if e & 0xFFFF8:
            reserved_bits += 1
        fo = e & 0xFFFFFFFFFFF00000
        if st in (6, 7):
            if want_list:
                bat["present_blocks"].append(
                    {"block": blk, "index": idx, "state": name,
                     "offset": fo})
        elif fo:
            nonzero_off_nonpresent += 1
    for k in range(g["bitmap_blocks"]):
        idx = k * (r + 1) + r
        e = arr[idx] if idx < n else 0
        st = e & 7
        name = sb_state_name(st)
        sbc[name] = sbc.get(name, 0) + 1
        if e & 0xFFFF8:
            reserved_bits += 1
        fo = e & 0xFFFFFFFFFFF00000
        if st == 6:
            bat["present_bitmaps"].append({"chunk": k, "index": idx,
                                           "offset": fo})
        elif fo:
            nonzero_off_nonpresent += 1
    bat["census"] = {"payload": payload, "sb": sbc}
    bat["entries_reserved_bits"] = reserved_bits
    bat["nonpresent_with_offset"] = nonzero_off_nonpresent
    # Entries past the last used index (slack of the region) should be 0.
    used = g["entries_expected"]
    if pb:
        used = max(used, (pb - 1) + (pb - 1) // r + 1)
    bat["slack_nonzero"] = sum(1 for i in range(used, n) if arr[i])
    return bat


# ---- log -------------------------------------------------------------------


def read_log_sectors(log, pos, count):
    """count 4 KiB sectors from log-relative pos, wrapping at the end."""
    out = bytearray()
    ll = len(log)
    for i in range(count):
        p = (pos + i * LOG_SECTOR) % ll
        out += log[p:p + LOG_SECTOR]
    return bytes(out)


def parse_log_entry(log, pos, hdr_guid):
    """Decodes the entry at log-relative pos; None if no 'loge' there."""
    ll = len(log)
    first = log[pos:pos + LOG_SECTOR]
    if first[:4] != b"loge":
        return None
    e = {"log_offset": pos, "checksum": u32(first, 4),
         "entry_length": u32(first, 8), "tail": u32(first, 12),
         "seq": u64(first, 16), "descriptor_count": u32(first, 24),
         "guid": guid_str(first[32:48]),
         "matches_header": bytes(first[32:48]) == hdr_guid and
         hdr_guid != ZERO_GUID,
         "flushed_file_offset": u64(first, 48),
         "last_file_offset": u64(first, 56),
         "crc_ok": False, "structure_ok": False, "problems": [],
         "descriptors": []}
    el = e["entry_length"]
    if el == 0 or el % LOG_SECTOR or el > ll:
        e["problems"].append("bad entry length %d" % el)
        return e
    nsec = el // LOG_SECTOR
    buf = read_log_sectors(log, pos, nsec)
    e["crc_ok"] = crc_with_zero_field(buf, 4) == e["checksum"]
    if not e["crc_ok"]:
        e["problems"].append("bad checksum")
    seq = e["seq"]
    nd = e["descriptor_count"]
    dsec = ceil_div(nd + 2, 128)
    if dsec > nsec:
        e["problems"].append("descriptors past entry")
        return e
    data_i = dsec
    ok = seq > 0 and e["tail"] % LOG_SECTOR == 0 and e["tail"] < ll
    if not ok:
        e["problems"].append("bad seq or tail")
    if e["flushed_file_offset"] % MiB or e["last_file_offset"] % MiB:
        e["problems"].append("file offsets not 1 MiB multiples")
        ok = False
    for i in range(nd):
        o = 64 + 32 * i
        d = buf[o:o + 32]
        sig = d[:4]
        if sig == b"zero":
            zl, fo, dseq = struct.unpack_from("<QQQ", d, 8)
            desc = {"type": "zero", "file_offset": fo, "length": zl}
            if dseq != seq or zl % LOG_SECTOR or fo % LOG_SECTOR:
                ok = False
                e["problems"].append("zero descriptor %d invalid" % i)
        elif sig == b"desc":
            trailing = u32(d, 4)
            leading, fo, dseq = struct.unpack_from("<QQQ", d, 8)
            desc = {"type": "data", "file_offset": fo, "length": LOG_SECTOR}
            if dseq != seq or fo % LOG_SECTOR:
                ok = False
                e["problems"].append("data descriptor %d invalid" % i)
            if data_i >= nsec:
                ok = False
                e["problems"].append("data sector %d past entry" % i)
            else:
                s = buf[data_i * LOG_SECTOR:(data_i + 1) * LOG_SECTOR]
                sh, sl = u32(s, 4), u32(s, 4092)
                if s[:4] != b"data" or ((sh << 32) | sl) != seq:
                    ok = False
                    e["problems"].append("data sector %d invalid" % i)
                desc["_sector"] = (struct.pack("<Q", leading) +
                                   s[8:4092] + struct.pack("<I", trailing))
            data_i += 1
        else:
            ok = False
            e["problems"].append("descriptor %d bad signature" % i)
            desc = {"type": "bad"}
        e["descriptors"].append(desc)
    if data_i > nsec:
        ok = False
    e["structure_ok"] = ok
    e["valid"] = ok and e["crc_ok"]
    return e


def scan_log(img, hdr):
    lg = {"offset": hdr["log_offset"], "length": hdr["log_length"],
          "header_log_guid": hdr["log_guid"], "entries": [],
          "active": None, "problems": []}
    lo, ll = hdr["log_offset"], hdr["log_length"]
    if ll == 0 or ll % MiB or lo % MiB or lo < MiB:
        lg["problems"].append("bad log offset/length")
        return lg
    log = img.raw_pread(lo, ll)
    if len(log) < ll:
        lg["problems"].append("log area truncated")
        log = log + bytes(ll - len(log))
    hg = guid_bytes(hdr["log_guid"])
    by_pos = {}
    for pos in range(0, ll, LOG_SECTOR):
        e = parse_log_entry(log, pos, hg)
        if e is not None:
            lg["entries"].append(e)
            by_pos[pos] = e
    if hg == ZERO_GUID:
        return lg
    # Active sequence: for each valid head H, walk from H.tail forward with
    # contiguous sequence numbers; the sequence is valid if it reaches H.
    best = None
    for h in lg["entries"]:
        if not (h.get("valid") and h["matches_header"]):
            continue
        seqs = []
        pos = h["tail"]
        prev = None
        for _ in range(ll // LOG_SECTOR + 1):
            e = by_pos.get(pos)
            if e is None or not e.get("valid") or not e["matches_header"]:
                break
            if prev is not None and e["seq"] != prev + 1:
                break
            seqs.append(e)
            prev = e["seq"]
            if e is h:
                break
            pos = (pos + e["entry_length"]) % ll
        if seqs and seqs[-1] is h:
            if best is None or h["seq"] > best[-1]["seq"]:
                best = seqs
    if best is None:
        lg["problems"].append("LogGuid set but no valid log sequence")
        return lg
    head = best[-1]
    lg["active"] = {"tail_offset": best[0]["log_offset"],
                    "head_offset": head["log_offset"],
                    "head_seq": head["seq"],
                    "entries": len(best),
                    "seqs": [e["seq"] for e in best],
                    "flushed_file_offset": head["flushed_file_offset"],
                    "last_file_offset": head["last_file_offset"],
                    "_entries": best}
    if img.file_size < head["flushed_file_offset"]:
        lg["problems"].append("file truncated: size %d < FlushedFileOffset %d"
                              % (img.file_size, head["flushed_file_offset"]))
    return lg


def replay_ops(active, file_size):
    """Overlay operations and resulting size of replaying 'active'."""
    ops = []
    size = file_size
    for e in active["_entries"]:
        for d in e["descriptors"]:
            if d["type"] == "data":
                ops.append((d["file_offset"], d["_sector"], LOG_SECTOR))
                size = max(size, d["file_offset"] + LOG_SECTOR)
            elif d["type"] == "zero":
                ops.append((d["file_offset"], None, d["length"]))
                size = max(size, d["file_offset"] + d["length"])
    size = max(size, active["last_file_offset"])
    return ops, size


# ---- whole file ------------------------------------------------------------


def dump(path, apply_log=False, want_list=True):
    img = Image(path)
    r = {"file": path, "file_size": img.file_size, "problems": []}
    r["fti"] = parse_fti(img)
    if not r["fti"]["signature_ok"]:
        r["problems"].append("bad file type identifier signature")
    hs = [parse_header(img.raw_pread(o, HEADER_BYTES), i + 1, o)
          for i, o in enumerate(HEADER_OFFS)]
    r["headers"] = hs
    cur, why = pick_header(hs[0], hs[1])
    r["current_header"] = None if cur is None else cur + 1
    if why:
        r["problems"].append(why)
    hdr = hs[cur] if cur is not None else None
    if hdr:
        if hdr["version"] != 1:
            r["problems"].append("header version %d != 1" % hdr["version"])
        if hdr["log_version"] != 0 and not hdr["log_guid_zero"]:
            r["problems"].append("log version %d with a log GUID"
                                 % hdr["log_version"])
    # The log comes first: everything else may be read through it.
    r["log"] = None
    if hdr:
        r["log"] = scan_log(img, hdr)
        r["problems"] += r["log"]["problems"]
        act = r["log"]["active"]
        r["log_replayed"] = False
        if apply_log and act:
            ops, size = replay_ops(act, img.file_size)
            img.set_overlay(ops, size)
            r["log_replayed"] = True
            r["size_after_replay"] = size
    rts = [parse_region_table(img.pread(o, RT_BYTES), i + 1, o)
           for i, o in enumerate(RT_OFFS)]
    r["region_tables"] = rts
    r["region_tables_identical"] = (img.pread(RT_OFFS[0], RT_BYTES) ==
                                    img.pread(RT_OFFS[1], RT_BYTES))
    use = rts[0] if rts[0]["valid"] else (rts[1] if rts[1]["valid"] else None)
    r["region_table_used"] = use["slot"] if use else None
    r["metadata"] = None
    r["bat"] = None
    if use is None:
        r["problems"].append("no valid region table")
    else:
        for rt in rts:
            if rt["valid"]:
                rt["problems"] += region_problems(rt, img.size)
        r["problems"] += ["region table %d: %s" % (use["slot"], p)
                          for p in use["problems"]]
        regs = {e["_guid"]: e for e in use["entries"]}
        mreg = regs.get(GUID_METADATA)
        breg = regs.get(GUID_BAT)
        if mreg:
            md = parse_metadata(img, mreg["offset"], mreg["length"])
            r["metadata"] = md
            r["problems"] += md["problems"]
            if breg:
                bat = parse_bat(img, breg["offset"], breg["length"], md,
                                want_list)
                r["bat"] = bat
                r["problems"] += bat["problems"]
        r["problems"] += layout_problems(r, img.size)
    r["_img"] = img
    return r


def objects(r):
    """Every allocated object as (start, end, name)."""
    objs = [(0, MiB, "header section")]
    hdr = current(r)
    if hdr and hdr["log_length"]:
        objs.append((hdr["log_offset"], hdr["log_offset"] + hdr["log_length"],
                     "log"))
    slot = r.get("region_table_used")
    if slot:
        for e in r["region_tables"][slot - 1]["entries"]:
            objs.append((e["offset"], e["offset"] + e["length"],
                         "region " + e["name"]))
    bat = r.get("bat")
    md = r.get("metadata")
    if bat and md and "chunk_ratio" in bat:
        bs = md["block_size"]
        for b in bat["present_blocks"]:
            objs.append((b["offset"], b["offset"] + bs,
                         "block %d" % b["block"]))
        for s in bat["present_bitmaps"]:
            objs.append((s["offset"], s["offset"] + MiB,
                         "bitmap %d" % s["chunk"]))
    return objs


def current(r):
    c = r.get("current_header")
    return r["headers"][c - 1] if c else None


def layout_problems(r, size):
    probs = []
    objs = sorted(objects(r))
    for a, b in zip(objs, objs[1:]):
        if b[0] < a[1]:
            probs.append("%s and %s overlap" % (a[2], b[2]))
            if len(probs) > 20:
                break
    bat = r.get("bat")
    md = r.get("metadata")
    if bat and md and "chunk_ratio" in bat:
        for b in bat["present_blocks"]:
            if b["offset"] < MiB:
                probs.append("BAT: block %d present at offset %#x"
                             % (b["block"], b["offset"]))
            elif b["offset"] + md["block_size"] > size:
                probs.append("BAT: block %d [%#x,+%#x) past end of file %#x"
                             % (b["block"], b["offset"], md["block_size"],
                                size))
        for s in bat["present_bitmaps"]:
            if not md.get("has_parent"):
                probs.append("BAT: sector bitmap present in a file without "
                             "a parent")
        if not md.get("has_parent") and \
                bat["census"]["payload"].get("PARTIALLY_PRESENT"):
            probs.append("BAT: PARTIALLY_PRESENT block without a parent")
        for st in ("RESERVED_4",):
            if bat["census"]["payload"].get(st):
                probs.append("BAT: reserved state 4")
        for k in bat["census"]["sb"]:
            if k.startswith("SB_RESERVED"):
                probs.append("BAT: sector bitmap entry in reserved state")
        if bat["entries_reserved_bits"]:
            probs.append("BAT: %d entries with reserved bits set"
                         % bat["entries_reserved_bits"])
    return probs


# ---- canonical writer rules -------------------------------------------------


def canonical_failures(r, want_diff=False):
    """tidemark's writer rules; want_diff: the file must be differencing."""
    f = []
    hs = r["headers"]
    for h in hs:
        if not h["valid"]:
            f.append("header %d not valid (signature %s, crc %s)"
                     % (h["slot"], h["signature_ok"], h["crc_ok"]))
            continue
        if h["version"] != 1 or h["log_version"] != 0:
            f.append("header %d version %d log version %d"
                     % (h["slot"], h["version"], h["log_version"]))
        if not h["reserved_zero"]:
            f.append("header %d reserved bytes not zero" % h["slot"])
        if not h["log_guid_zero"]:
            f.append("header %d LogGuid %s not zero after close"
                     % (h["slot"], h["log_guid"]))
    if all(h["valid"] for h in hs):
        for k in ("log_offset", "log_length"):
            if hs[0][k] != hs[1][k]:
                f.append("headers differ in %s" % k)
    if not r["fti"]["signature_ok"]:
        f.append("file type identifier signature")
    rts = r["region_tables"]
    for rt in rts:
        if not rt["valid"]:
            f.append("region table %d not valid (signature %s, crc %s)"
                     % (rt["slot"], rt["signature_ok"], rt["crc_ok"]))
        if rt["problems"]:
            f.append("region table %d: %s" % (rt["slot"],
                                               "; ".join(rt["problems"])))
        for e in rt["entries"]:
            if not e["required"]:
                f.append("region table %d: %s Required=0"
                         % (rt["slot"], e["name"]))
            if e["flags"] & ~1:
                f.append("region table %d: %s reserved flag bits"
                         % (rt["slot"], e["name"]))
        names = sorted(e["name"] for e in rt["entries"])
        if names != ["BAT", "metadata"]:
            f.append("region table %d lists %s" % (rt["slot"], names))
    if not r["region_tables_identical"]:
        f.append("region tables 1 and 2 differ")
    hdr = current(r)
    if hdr:
        if hdr["log_offset"] % MiB or hdr["log_length"] % MiB or \
                hdr["log_length"] == 0 or hdr["log_offset"] < MiB:
            f.append("log offset/length not 1 MiB multiples")
    md = r.get("metadata")
    if md is None:
        f.append("no metadata")
        return f
    if md["problems"]:
        f.append("metadata: " + "; ".join(md["problems"]))
    for it in md["items"]:
        want = CANONICAL_ITEM_FLAGS.get(it["_guid"])
        if it["is_user"]:
            continue
        if want is None:
            f.append("unexpected system item %s" % it["guid"])
        elif it["flags"] != want:
            f.append("item %s flags %#x, want %#x"
                     % (it["name"], it["flags"], want))
    bat = r.get("bat")
    if bat is None or "chunk_ratio" not in bat:
        f.append("no BAT")
        return f
    if bat["problems"]:
        f.append("BAT: " + "; ".join(bat["problems"]))
    want_len = ceil_div(bat["entries_sb_stride"] * 8, MiB) * MiB
    if bat["length"] < want_len:
        f.append("BAT region %d bytes, writer rule SB*(R+1) needs %d"
                 % (bat["length"], want_len))
    if bat["nonpresent_with_offset"]:
        f.append("%d non-present BAT entries carry a FileOffsetMB"
                 % bat["nonpresent_with_offset"])
    if bat["entries_reserved_bits"]:
        f.append("%d BAT entries with reserved bits"
                 % bat["entries_reserved_bits"])
    if bat["slack_nonzero"]:
        f.append("%d non-zero BAT entries past the last used index"
                 % bat["slack_nonzero"])
    if any(bat["census"]["payload"].get(s) for s in
           ("RESERVED_4", "UNMAPPED_V095")):
        f.append("BAT holds reserved payload states")
    if not md.get("has_parent"):
        if bat["census"]["payload"].get("PARTIALLY_PRESENT"):
            f.append("PARTIALLY_PRESENT without a parent")
        if set(bat["census"]["sb"]) - {"SB_NOT_PRESENT"}:
            f.append("sector bitmap entries %s without a parent"
                     % bat["census"]["sb"])
    if md.get("has_parent") or "parent_locator" in md or want_diff:
        f += differencing_failures(r, want_diff)
    if md.get("leave_block_allocated") and not md.get("has_parent"):
        fp = bat["census"]["payload"].get("FULLY_PRESENT", 0)
        if fp != bat["payload_blocks"]:
            f.append("fixed file: %d of %d blocks FULLY_PRESENT (%s)"
                     % (fp, bat["payload_blocks"],
                        bat["census"]["payload"]))
    for lp in layout_problems(r, r["file_size"]):
        f.append(lp)
    for o in objects(r):
        if o[0] % MiB:
            f.append("%s at %#x not 1 MiB aligned" % (o[2], o[0]))
    return f


PATH_KEYS = ("relative_path", "volume_path", "absolute_win32_path")


def differencing_failures(r, want_diff):
    """Writer rules of a differencing disk (reference sections 6 and 8):
    HasParent set, a VHDX-type locator with a parent_linkage GUID and a
    path, no LeaveBlockAllocated, a present sector bitmap for every chunk
    holding a PARTIALLY_PRESENT block (FileOffsetMB 0 for non-present
    states and the SB*(R+1) BAT size are checked for every file)."""
    f = []
    md = r["metadata"]
    bat = r["bat"]
    hp = md.get("has_parent")
    loc = md.get("parent_locator")
    if want_diff and not hp:
        f.append("differencing: HasParent not set")
    if not hp:
        if loc is not None:
            f.append("differencing: parent locator without HasParent")
        return f
    if md.get("leave_block_allocated"):
        f.append("differencing: LeaveBlockAllocated set with HasParent")
    if loc is None:
        f.append("differencing: HasParent without a parent locator")
    else:
        if not loc["type_ok"]:
            f.append("differencing: locator type %s is not VHDX"
                     % loc["type"])
        if loc["problems"]:
            f.append("differencing: locator: " + "; ".join(loc["problems"]))
        if loc.get("linkage") is None:
            f.append("differencing: locator has no parent_linkage")
        elif loc["linkage"] == "invalid":
            f.append("differencing: parent_linkage %r is not a GUID"
                     % loc["entries"]["parent_linkage"])
        if loc.get("linkage2") == "invalid":
            f.append("differencing: parent_linkage2 %r is not a GUID"
                     % loc["entries"]["parent_linkage2"])
        if not any(loc["entries"].get(k) for k in PATH_KEYS):
            f.append("differencing: locator holds no parent path")
    if bat and "chunk_ratio" in bat:
        r_ = bat["chunk_ratio"]
        partial = sorted({b["block"] // r_ for b in bat["present_blocks"]
                          if b["state"] == "PARTIALLY_PRESENT"})
        have = {s["chunk"] for s in bat["present_bitmaps"]}
        miss = [k for k in partial if k not in have]
        if miss:
            f.append("differencing: chunk(s) %s hold PARTIALLY_PRESENT "
                     "blocks but no present sector bitmap"
                     % miss[:8])
    return f


# ---- output ------------------------------------------------------------------


def public(o):
    """Drops private keys (starting with '_') for JSON."""
    if isinstance(o, dict):
        return {k: public(v) for k, v in o.items() if not k.startswith("_")}
    if isinstance(o, list):
        return [public(v) for v in o]
    return o


def text(r, out):
    p = lambda *a: print(*a, file=out)
    p("file %s (%d bytes)" % (r["file"], r["file_size"]))
    p("file type identifier: signature %s creator %r"
      % ("ok" if r["fti"]["signature_ok"] else "BAD", r["fti"]["creator"]))
    for h in r["headers"]:
        p("header %d @%#x: signature %s crc %s seq %s version %s "
          "log_version %s" % (h["slot"], h["offset"], h["signature_ok"],
                              h["crc_ok"], h.get("seq"), h.get("version"),
                              h.get("log_version")))
        if "seq" in h:
            p("  file_write_guid %s data_write_guid %s"
              % (h["file_write_guid"], h["data_write_guid"]))
            p("  log_guid %s log_offset %#x log_length %#x"
              % (h["log_guid"], h["log_offset"], h["log_length"]))
    p("current header: %s" % r["current_header"])
    for rt in r["region_tables"]:
        p("region table %d @%#x: signature %s crc %s count %s"
          % (rt["slot"], rt["offset"], rt["signature_ok"], rt["crc_ok"],
             rt.get("entry_count")))
        for e in rt["entries"][:16]:
            p("  %-8s %s offset %#x length %#x required %d"
              % (e["name"], e["guid"], e["offset"], e["length"],
                 e["required"]))
    p("region tables identical: %s" % r["region_tables_identical"])
    md = r.get("metadata")
    if md:
        p("metadata @%#x length %#x signature %s count %s"
          % (md["offset"], md["length"], md["signature_ok"],
             md.get("entry_count")))
        for it in md["items"][:32]:
            p("  %-20s offset %#x length %d flags %#x"
              % (it["name"], it["offset"], it["length"], it["flags"]))
        for k in ("block_size", "leave_block_allocated", "has_parent",
                  "virtual_size", "logical_sector", "physical_sector",
                  "virtual_disk_id"):
            if k in md:
                p("  %s = %s" % (k, md[k]))
        if "parent_locator" in md:
            for k, v in md["parent_locator"]["entries"].items():
                p("  parent_locator %s = %s" % (k, v))
    bat = r.get("bat")
    if bat and "chunk_ratio" in bat:
        p("BAT @%#x length %#x: R=%d PB=%d SB=%d entries expected %d "
          "(region holds %d)" % (bat["offset"], bat["length"],
                                 bat["chunk_ratio"], bat["payload_blocks"],
                                 bat["bitmap_blocks"],
                                 bat["entries_expected"],
                                 bat["region_entries"]))
        p("  payload census: %s" % bat["census"]["payload"])
        p("  bitmap census: %s" % bat["census"]["sb"])
        for b in bat["present_blocks"][:64]:
            p("  block %d (index %d) %s @%#x" % (b["block"], b["index"],
                                                 b["state"], b["offset"]))
        if len(bat["present_blocks"]) > 64:
            p("  ... %d present blocks" % len(bat["present_blocks"]))
    lg = r.get("log")
    if lg:
        p("log @%#x length %#x, header LogGuid %s"
          % (lg["offset"], lg["length"], lg["header_log_guid"]))
        for e in lg["entries"]:
            p("  entry @%#x seq %d length %d tail %#x descriptors %d guid %s "
              "matches_header %s crc %s valid %s flushed %#x last %#x"
              % (e["log_offset"], e["seq"], e["entry_length"], e["tail"],
                 e["descriptor_count"], e["guid"], e["matches_header"],
                 e["crc_ok"], e.get("valid"), e["flushed_file_offset"],
                 e["last_file_offset"]))
        if lg["active"]:
            a = lg["active"]
            p("  active sequence: seqs %s tail @%#x head @%#x"
              % (a["seqs"], a["tail_offset"], a["head_offset"]))
    p("problems: %s" % (r["problems"] or "none"))


def get_path(obj, path):
    for part in path.split("."):
        if isinstance(obj, list):
            obj = obj[int(part)]
        elif isinstance(obj, dict):
            obj = obj.get(part)
        else:
            return None
    return obj


def main(argv):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("file")
    ap.add_argument("--json", action="store_true")
    ap.add_argument("--get", action="append", default=[],
                    help="print one JSON field (dotted path)")
    ap.add_argument("--check-canonical", action="store_true")
    ap.add_argument("--differencing", action="store_true",
                    help="with --check-canonical: the file must be a "
                    "differencing disk")
    ap.add_argument("--apply-log", action="store_true",
                    help="read structures through the replayed log")
    a = ap.parse_args(argv)
    try:
        r = dump(a.file, apply_log=a.apply_log)
    except OSError as e:
        print("vhdxdump: %s" % e, file=sys.stderr)
        return 1
    pub = public(r)
    if a.check_canonical:
        fails = canonical_failures(r, a.differencing)
        for x in fails:
            print("non-canonical: %s" % x)
        if not fails:
            print("canonical: %s" % a.file)
        return 1 if fails else 0
    if a.get:
        for g in a.get:
            v = get_path(pub, g)
            if isinstance(v, (dict, list)):
                print(json.dumps(v, sort_keys=True))
            elif isinstance(v, bool):
                print("true" if v else "false")
            elif v is None:
                print("null")
            else:
                print(v)
        return 0
    if a.json:
        json.dump(pub, sys.stdout, indent=1, sort_keys=True)
        print()
    else:
        text(r, sys.stdout)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
