#!/usr/bin/python3
# SPDX-License-Identifier: MIT
"""mkdirty.py - build VHDX files with a dirty log (reference 12.5).

Input: copies of one VHDX before and after an allocating write (QEMU's
qemu-io is the usual writer).  Output: the "after" file in which the
metadata changes (BAT and metadata region sectors) exist only in the log, so
the file reads right only once the log is replayed.

    mkdirty.py BEFORE AFTER OUT                      QEMU's newest log entry
    mkdirty.py --entries 3 BEFORE AFTER OUT          our own 3-entry sequence
    mkdirty.py --entries 2 --wrap BEFORE AFTER OUT   sequence wraps the log end
    mkdirty.py --entries 2 --zero-desc ...           plus a zero descriptor
                                                     that clears the first
                                                     64 KiB of a present block
    mkdirty.py --torn-head ...                       plus a newer entry with a
                                                     bad checksum (ignored)
    mkdirty.py --flushed-past-eof ...                FlushedFileOffset beyond
                                                     EOF: readers must refuse
    mkdirty.py --last-past-eof ...                   LastFileOffset 4 MiB
                                                     beyond EOF: replay must
                                                     extend the file

    mkdirty.py --require-regions FILE                set Required = 1 in both
                                                     region tables (QEMU
                                                     writes 0), in place

QEMU mode needs exactly the changed sectors in its newest entry: make AFTER
with one allocating write.  Prints a JSON summary on stdout.  Exit 0 on
success, 1 on error.
"""

import argparse
import json
import os
import shutil
import struct
import sys
import uuid

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import vhdxdump as vd  # noqa: E402

MiB = vd.MiB
SECTOR = vd.LOG_SECTOR


def die(msg):
    print("mkdirty: %s" % msg, file=sys.stderr)
    sys.exit(1)


def read_at(path, off, n):
    with open(path, "rb") as f:
        f.seek(off)
        b = f.read(n)
    return b + bytes(n - len(b))


def write_at(path, off, data):
    with open(path, "r+b") as f:
        f.seek(off)
        f.write(data)


def set_log_guid(path, guid):
    """Sets LogGuid in both headers and recomputes their checksums."""
    for off in vd.HEADER_OFFS:
        h = bytearray(read_at(path, off, vd.HEADER_BYTES))
        if h[:4] != b"head":
            die("header at %#x has no signature" % off)
        h[48:64] = guid
        h[4:8] = b"\0\0\0\0"
        h[4:8] = struct.pack("<I", vd.crc32c(bytes(h)))
        write_at(path, off, bytes(h))


def metadata_spans(r):
    """(offset, length) of the BAT and metadata regions of a dump."""
    slot = r["region_table_used"]
    if not slot:
        die("no valid region table")
    return [(e["offset"], e["length"])
            for e in r["region_tables"][slot - 1]["entries"]
            if e["name"] in ("BAT", "metadata")]


def changed_sectors(before, after, spans):
    out = []
    for off, ln in spans:
        a = read_at(before, off, ln)
        b = read_at(after, off, ln)
        for i in range(0, ln, SECTOR):
            if a[i:i + SECTOR] != b[i:i + SECTOR]:
                out.append((off + i, b[i:i + SECTOR], a[i:i + SECTOR]))
    return out


def build_entry(seq, tail, guid, updates, flushed, last):
    """Encodes one log entry; updates are ('data', off, 4096 bytes) or
    ('zero', off, length)."""
    nd = len(updates)
    dsec = vd.ceil_div(nd + 2, 128)
    ndata = sum(1 for u in updates if u[0] == "data")
    length = (dsec + ndata) * SECTOR
    buf = bytearray(length)
    struct.pack_into("<4sIIIQII16sQQ", buf, 0, b"loge", 0, length, tail,
                     seq, nd, 0, guid, flushed, last)
    di = dsec
    for i, u in enumerate(updates):
        o = 64 + 32 * i
        if u[0] == "zero":
            struct.pack_into("<4sIQQQ", buf, o, b"zero", 0, u[2], u[1], seq)
        else:
            s = u[2]
            assert len(s) == SECTOR
            struct.pack_into("<4sIQQQ", buf, o, b"desc",
                             struct.unpack_from("<I", s, 4092)[0],
                             struct.unpack_from("<Q", s, 0)[0], u[1], seq)
            d = di * SECTOR
            struct.pack_into("<4sI", buf, d, b"data", seq >> 32)
            buf[d + 8:d + 4092] = s[8:4092]
            struct.pack_into("<I", buf, d + 4092, seq & 0xFFFFFFFF)
            di += 1
    struct.pack_into("<I", buf, 4, vd.crc32c(bytes(buf)))
    return bytes(buf)


def write_log(path, log_off, log_len, pos, data):
    """Writes data into the log at log-relative pos, wrapping at the end."""
    for i in range(0, len(data), SECTOR):
        p = (pos + i) % log_len
        write_at(path, log_off + p, data[i:i + SECTOR])


def patch_entry(path, log_off, log_len, e, flushed=None, last=None,
                break_crc=False):
    """Rewrites fields of an existing entry and its checksum."""
    n = e["entry_length"] // SECTOR
    with open(path, "rb") as f:
        f.seek(log_off)
        log = f.read(log_len)
    buf = bytearray(vd.read_log_sectors(log, e["log_offset"], n))
    if flushed is not None:
        struct.pack_into("<Q", buf, 48, flushed)
    if last is not None:
        struct.pack_into("<Q", buf, 56, last)
    buf[4:8] = b"\0\0\0\0"
    crc = vd.crc32c(bytes(buf))
    if break_crc:
        crc ^= 0x5A5A5A5A
    struct.pack_into("<I", buf, 4, crc)
    write_log(path, log_off, log_len, e["log_offset"], bytes(buf))


def require_regions(path):
    """Sets Required = 1 on every entry of both region tables (QEMU writes
    0), so a QEMU-made fixture differs from a canonical file only where a
    test means it to."""
    for off in vd.RT_OFFS:
        rt = bytearray(read_at(path, off, vd.RT_BYTES))
        if rt[:4] != b"regi":
            die("region table at %#x has no signature" % off)
        n = struct.unpack_from("<I", rt, 8)[0]
        for i in range(min(n, 2047)):
            o = 16 + 32 * i + 28
            struct.pack_into("<I", rt, o, struct.unpack_from("<I", rt, o)[0] | 1)
        rt[4:8] = b"\0\0\0\0"
        rt[4:8] = struct.pack("<I", vd.crc32c(bytes(rt)))
        write_at(path, off, bytes(rt))
    return 0


def main(argv):
    if len(argv) == 2 and argv[0] == "--require-regions":
        return require_regions(argv[1])
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("before")
    ap.add_argument("after")
    ap.add_argument("out")
    ap.add_argument("--entries", type=int, default=0,
                    help="write our own sequence of N entries")
    ap.add_argument("--wrap", action="store_true")
    ap.add_argument("--zero-desc", action="store_true")
    ap.add_argument("--torn-head", action="store_true")
    ap.add_argument("--flushed-past-eof", action="store_true")
    ap.add_argument("--last-past-eof", action="store_true")
    a = ap.parse_args(argv)

    rb = vd.dump(a.before)
    ra = vd.dump(a.after)
    for r, name in ((rb, "before"), (ra, "after")):
        if r["problems"]:
            die("%s file has problems: %s" % (name, r["problems"]))
    hdr = vd.current(ra)
    if not hdr["log_guid_zero"]:
        die("after file already has a dirty log")
    log_off, log_len = hdr["log_offset"], hdr["log_length"]
    spans = metadata_spans(ra)
    if spans != metadata_spans(rb):
        die("before and after have different regions")
    changes = changed_sectors(a.before, a.after, spans)
    if not changes:
        die("no metadata sector differs between before and after")
    after_size = os.path.getsize(a.after)
    before_size = os.path.getsize(a.before)
    shutil.copyfile(a.after, a.out)
    # The stale metadata goes back in place: only the log knows better.
    for off, _new, old in changes:
        write_at(a.out, off, old)
    summary = {"changed_sectors": [c[0] for c in changes]}

    if a.entries <= 0:
        # QEMU mode: the entry that carries every change, with the new
        # contents.  Each qemu-io run restarts at log offset 0 with seq 1,
        # so stale entries of earlier runs may have higher sequence
        # numbers: match on content, not on sequence numbers.
        want = {c[0]: c[1] for c in changes}
        ents = []
        for e in ra["log"]["entries"]:
            if not e.get("valid"):
                continue
            got = {d["file_offset"]: d.get("_sector")
                   for d in e["descriptors"] if d["type"] == "data"}
            if got == want:
                ents.append(e)
        if not ents:
            die("no QEMU log entry holds exactly the changed sectors %s: "
                "use one allocating write or --entries"
                % [hex(c[0]) for c in changes])
        newest = max(ents, key=lambda e: e["seq"])
        guid = vd.guid_bytes(newest["guid"])
        head = newest
        summary.update(mode="qemu", head_seq=newest["seq"],
                       head_offset=newest["log_offset"])
    else:
        guid = uuid.uuid4().bytes
        n = a.entries
        updates = [("data", off, new) for off, new, _old in changes]
        if a.zero_desc:
            blocks = [b for b in ra["bat"]["present_blocks"]]
            if not blocks:
                die("--zero-desc needs a present block")
            b = blocks[0]
            updates.append(("zero", b["offset"], 64 * 1024))
            summary["zeroed"] = {"block": b["block"],
                                 "file_offset": b["offset"],
                                 "virtual_offset": b["block"] *
                                 ra["metadata"]["block_size"],
                                 "length": 64 * 1024}
        groups = [updates[i::n] for i in range(n)]
        flushed = vd.ceil_div(before_size, MiB) * MiB
        if flushed > after_size:
            flushed = after_size // MiB * MiB
        last = vd.ceil_div(after_size, MiB) * MiB
        seq0 = 1000
        sizes = [build_entry(1, 0, guid, g, 0, 0) for g in groups]
        total = sum(len(s) for s in sizes)
        if total + SECTOR > log_len:
            die("log too small for %d bytes of entries" % total)
        if a.wrap:
            # The first entry ends exactly at the end of the log; the
            # others start again at offset 0.
            start = log_len - len(sizes[0])
        else:
            start = 0
        pos = start
        ents = []
        for i, g in enumerate(groups):
            e = build_entry(seq0 + i, start, guid, g, flushed, last)
            write_log(a.out, log_off, log_len, pos, e)
            ents.append({"seq": seq0 + i, "log_offset": pos,
                         "entry_length": len(e)})
            pos = (pos + len(e)) % log_len
        head = ents[-1]
        summary.update(mode="own", entries=n, tail_offset=start,
                       head_seq=head["seq"], head_offset=head["log_offset"],
                       next_offset=pos)
        if a.torn_head:
            e = build_entry(seq0 + n, start, guid, groups[0], flushed, last)
            torn = bytearray(e)
            torn[SECTOR - 100] ^= 0xFF      # checksum no longer matches
            write_log(a.out, log_off, log_len, pos, bytes(torn))
            summary["torn_offset"] = pos
    if a.flushed_past_eof or a.last_past_eof:
        rr = vd.dump(a.out)
        e = [x for x in rr["log"]["entries"]
             if x["log_offset"] == head["log_offset"]][0]
        size = os.path.getsize(a.out)
        if a.flushed_past_eof:
            fl = vd.ceil_div(size, MiB) * MiB + 2 * MiB
            patch_entry(a.out, log_off, log_len, e, flushed=fl,
                        last=max(fl, e["last_file_offset"]))
            summary["flushed_file_offset"] = fl
        else:
            ls = vd.ceil_div(size, MiB) * MiB + 4 * MiB
            patch_entry(a.out, log_off, log_len, e, last=ls)
            summary["last_file_offset"] = ls
    set_log_guid(a.out, guid)
    summary["log_guid"] = vd.guid_str(guid)
    summary["file_size"] = os.path.getsize(a.out)
    # Self-check with the independent dumper: the log must be the only
    # place where the new metadata lives.
    chk = vd.dump(a.out, apply_log=True)
    act = chk["log"]["active"]
    if act is None:
        die("built file has no active log sequence: %s" % chk["problems"])
    summary["active_seqs"] = act["seqs"]
    json.dump(summary, sys.stdout, sort_keys=True)
    print()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
