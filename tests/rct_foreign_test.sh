#!/bin/bash
# SPDX-License-Identifier: MIT
# rct_foreign_test.sh - change tracking through the tidemark CLI, checked
# against independent tools (DESIGN.md invariants 1 and 3).
#
# (a) 'rct changes --since ID' covers every byte that differs between
#     'qemu-img convert -O raw' snapshots taken at the seal and after a set
#     of 'vhd write's (python3 compares them), and equals exactly the
#     granule-aligned windows of those writes (no crash: no more, no
#     less), for one hand-computed case and for random writes; windows
#     (--offset/--length), --until, --json and 4 KiB granules too.
# (b) a foreign write (qemu-io) makes 'rct changes' fail with "reset" and
#     'rct status --json' say found "reset-foreign-write"; qemu-img check
#     still passes; the next tidemark write starts a new lineage and the
#     old ID keeps failing.
# (c) sidecars deleted: both -> "not enabled"; one of them -> a reset.
# (d) sidecars corrupted with dd: both .rct headers, the .rct bodies, the
#     .mrt header -> a reset, never ranges; random bytes anywhere in the
#     sidecars -> a reset or ranges that still cover every change.
# (e) another disk's sidecars copied over -> "reset" or "another disk".
# (f) 'vhd resize' -> old IDs fail "reset" (resized); a new ID works.
# (g) the disk and its sidecars copied, moved or renamed together -> the
#     same ranges, found "clean".
# (h) QEMU reading the disk (qemu-img info/check/compare/convert, qemu-io
#     -r) changes nothing: file bytes, status and ranges as before.
. "${TM_TOOLS:-$(dirname "$0")/tools}/lib.sh"
need_tools qemu-img qemu-io cmp dd sha256sum
need_tidemark
mk_scratch
cd "$SCRATCH" || exit 1

MiB=$((1024 * 1024))
quiet() { "$@" >/dev/null; }

if ! tm rct --help >/dev/null 2>&1; then
    echo "Bail out! 'tidemark rct' is not available"
    exit 1
fi

# covers.py <before.raw> <after.raw> <ranges file>: every differing byte
# lies in a listed range ("OFFSET LENGTH" lines).  Prints a summary.
cat >covers.py <<'EOF'
import sys
a = open(sys.argv[1], 'rb').read()
b = open(sys.argv[2], 'rb').read()
rs = sorted(tuple(int(x) for x in l.split()) for l in open(sys.argv[3])
            if l.strip())
if len(a) != len(b):
    print("sizes differ: %d and %d" % (len(a), len(b)))
    sys.exit(1)
C = 65536
runs = []
for base in range(0, len(a), C):
    x, y = a[base:base + C], b[base:base + C]
    if x == y:
        continue
    k = 0
    while k < len(x):
        if x[k] == y[k]:
            k += 1
            continue
        e = k
        while e < len(x) and x[e] != y[e]:
            e += 1
        if runs and runs[-1][1] == base + k:
            runs[-1][1] = base + e
        else:
            runs.append([base + k, base + e])
        k = e
missed = 0
first = None
i = 0
for s, e in runs:
    p = s
    while p < e:
        while i < len(rs) and rs[i][0] + rs[i][1] <= p:
            i += 1
        if i < len(rs) and rs[i][0] <= p:
            p = min(e, rs[i][0] + rs[i][1])
            continue
        q = min(e, rs[i][0]) if i < len(rs) else e
        missed += q - p
        if first is None:
            first = p
        p = q
diff = sum(e - s for s, e in runs)
print("%d bytes differ in %d runs; %d ranges, %d bytes reported; %d missed%s"
      % (diff, len(runs), len(rs), sum(l for _, l in rs), missed,
         "" if first is None else " (first at %d)" % first))
sys.exit(1 if missed else 0)
EOF

# windows.py <granularity> <disk size> <off len>...: the merged,
# granule-aligned windows of writes, "OFFSET LENGTH" per line.
cat >windows.py <<'EOF'
import sys
g, size = int(sys.argv[1]), int(sys.argv[2])
v = [int(x) for x in sys.argv[3:]]
w = sorted((o // g * g, min(size, (o + n + g - 1) // g * g))
           for o, n in zip(v[0::2], v[1::2]) if n > 0)
out = []
for s, e in w:
    if out and s <= out[-1][1]:
        out[-1][1] = max(out[-1][1], e)
    else:
        out.append([s, e])
for s, e in out:
    print(s, e - s)
EOF

covers() {
    local out
    if ! out=$($PY covers.py "$1" "$2" "$3" 2>&1); then
        diag "$out"
        return 1
    fi
    diag "$out"
}

# same_lines <actual file> <expected file>
same_lines() {
    if ! cmp -s "$1" "$2"; then
        diag "got: $(tr '\n' ';' <"$1")"
        diag "want: $(tr '\n' ';' <"$2")"
        return 1
    fi
}

status_get() {
    tm rct status --json "$1" | json_get - "$2"
}

# refused <name> <disk> <id> <keyword regex> [changes options...]:
# 'rct changes' exits 1, prints no range and says why (one of the
# keywords, case-insensitive).
refused() {
    local name=$1 d=$2 id=$3 kw=$4 rc
    shift 4
    tm rct changes "$d" --since "$id" "$@" >ref.out 2>ref.err
    rc=$?
    if [ "$rc" -eq 1 ] && [ ! -s ref.out ] && grep -qiE "$kw" ref.err; then
        ok "$name"
        diag "$(cat ref.err)"
    else
        not_ok "$name"
        diag "rc $rc (want 1); stdout: $(head -c 300 ref.out)"
        diag "stderr (want /$kw/): $(cat ref.err)"
    fi
}

# ---- (a) changes cover what qemu-img sees changing ------------------------

G=65536
tm vhd new a.vhdx --size 64M >/dev/null || not_ok "a: vhd new"
t "a: rct enable --granularity 64K" \
    quiet tm rct enable a.vhdx --granularity 64K
eq "a: status: enabled" "$(status_get a.vhdx enabled)" true
eq "a: status: granularity" "$(status_get a.vhdx granularity)" $G
eq "a: status: no ID yet" "$(status_get a.vhdx most_recent_id)" null
# Data before the seal, so the sealed state is not all zeros.
tm vhd write a.vhdx --offset 0 --pattern 0x01 --length $((3 * MiB))
ID0=$(tm rct seal a.vhdx)
t "a: seal prints an ID" grep -qE \
    '^rctX:[0-9a-f]{8}(:[0-9a-f]{4}){3}:[0-9a-f]{12}:[0-9a-f]{8}$' <<<"$ID0"
eq "a: status names it" "$(status_get a.vhdx most_recent_id)" "$ID0"
eq "a: status: no newer changes" "$(status_get a.vhdx newer_changes)" false
eq "a: status: found clean" "$(status_get a.vhdx found)" clean
tm rct changes a.vhdx --since "$ID0" >a.none
t "a: nothing changed yet" test ! -s a.none
qemu_raw a.vhdx a0.raw

# Inside granule 1; one byte; across a granule boundary; the same bytes
# that are there already (reported, though nothing differs); the last
# sector; random data from stdin.
WR=(100000 5000  $((10 * MiB + 1)) 1  $((20 * MiB - 100)) 200
    $((2 * MiB)) 4096  $((64 * MiB - 512)) 512)
PAT=(0x11 0x22 0x33 0x01 0x44)
good=0
for i in 0 1 2 3 4; do
    tm vhd write a.vhdx --offset "${WR[$((2 * i))]}" --pattern "${PAT[$i]}" \
        --length "${WR[$((2 * i + 1))]}" || good=1
done
head -c 100000 /dev/urandom >a.rnd
tm vhd write a.vhdx --offset $((33 * MiB + 12345)) <a.rnd || good=1
WR+=($((33 * MiB + 12345)) 100000)
t "a: vhd writes succeed" test $good = 0
qemu_raw a.vhdx a1.raw
tm rct changes a.vhdx --since "$ID0" >a.ch
printf '%s\n' "65536 65536" "2097152 65536" "10485760 65536" \
    "20905984 131072" "34603008 131072" "67043328 65536" >a.want
t "a: rct changes lists exactly the written granules" same_lines a.ch a.want
$PY windows.py $G $((64 * MiB)) "${WR[@]}" >a.win
t "a: (the windows computed agree)" same_lines a.win a.want
t "a: every byte qemu-img sees changed is covered" covers a0.raw a1.raw a.ch
eq "a: status: newer changes" "$(status_get a.vhdx newer_changes)" true
t "a: qemu-img check is clean" qemu_check_clean a.vhdx

tm rct changes a.vhdx --since "$ID0" --json >a.json
eq "a: --json ranges" "$($PY -c 'import json,sys
d=json.load(open(sys.argv[1]))
print(";".join("%d %d" % (r["offset"], r["length"]) for r in d["ranges"]))' \
    a.json)" "$(paste -sd';' a.want)"
eq "a: --json changed_bytes" "$(json_get a.json changed_bytes)" \
    $((65536 * 4 + 131072 * 2))
eq "a: --offset/--length window, aligned" \
    "$(tm rct changes a.vhdx --since "$ID0" --offset $((20 * MiB)) \
        --length "$MiB")" "20971520 65536"
eq "a: --offset/--length window, clipped at both ends" \
    "$(tm rct changes a.vhdx --since "$ID0" --offset $((20 * MiB - 1000)) \
        --length 500)" "20970520 500"
eq "a: a window with nothing in it" \
    "$(tm rct changes a.vhdx --since "$ID0" --offset $((40 * MiB)) \
        --length "$MiB" | wc -l)" 0

ID1=$(tm rct seal a.vhdx)
t "a: a second seal gives another ID" test "$ID1" != "$ID0"
tm vhd write a.vhdx --offset $((40 * MiB)) --pattern 0x55 --length $((3 * G))
tm vhd write a.vhdx --offset 100000 --pattern 0x66 --length 10
qemu_raw a.vhdx a2.raw
tm rct changes a.vhdx --since "$ID1" >a.ch1
printf '%s\n' "65536 65536" "41943040 196608" >a.want1
t "a: changes since the second ID, exactly" same_lines a.ch1 a.want1
t "a: ... cover what changed since it" covers a1.raw a2.raw a.ch1
tm rct changes a.vhdx --since "$ID0" >a.ch0
t "a: changes since the first ID cover everything since" \
    covers a0.raw a2.raw a.ch0
tm rct changes a.vhdx --since "$ID0" --until "$ID1" >a.until
t "a: --until covers what changed between the two IDs" \
    covers a0.raw a1.raw a.until

# Random writes, 4 KiB granules: exactly the windows, and every change.
tm vhd new r.vhdx --size 32M >/dev/null
tm rct enable r.vhdx --granularity 4K >/dev/null
tm vhd write r.vhdx --offset $((5 * MiB)) --pattern 0x77 --length $((8 * MiB))
IDR=$(tm rct seal r.vhdx)
qemu_raw r.vhdx r0.raw
RANDOM=4242
RW=()
good=0
for i in $(seq 1 30); do
    off=$(( (RANDOM * 32768 + RANDOM) % (32 * MiB) ))
    len=$(( 1 + (RANDOM * 32768 + RANDOM) % (i % 3 == 0 ? 300000 : 9000) ))
    [ $((off + len)) -le $((32 * MiB)) ] || len=$((32 * MiB - off))
    pat=$((RANDOM % 4 == 0 ? 0 : RANDOM % 256))
    tm vhd write r.vhdx --offset $off --pattern $pat --length $len || good=1
    RW+=($off $len)
done
t "r: 30 random writes succeed" test $good = 0
qemu_raw r.vhdx r1.raw
tm rct changes r.vhdx --since "$IDR" >r.ch
$PY windows.py 4096 $((32 * MiB)) "${RW[@]}" >r.want
t "r: changes are exactly the 4 KiB windows of the writes" \
    same_lines r.ch r.want
t "r: and cover every byte qemu-img sees changed" covers r0.raw r1.raw r.ch

# ---- (b) a foreign write ---------------------------------------------------

tm vhd new b.vhdx --size 64M >/dev/null
tm rct enable b.vhdx >/dev/null
tm vhd write b.vhdx --offset 0 --pattern 0x01 --length $G
IDB=$(tm rct seal b.vhdx)
t "b: tracked, nothing changed since the seal" \
    test -z "$(tm rct changes b.vhdx --since "$IDB")"
cp b.vhdx bz.vhdx && cp b.vhdx.rct bz.vhdx.rct && cp b.vhdx.mrt bz.vhdx.mrt
t "b: qemu-io writes the disk" \
    quiet qemu-io -f vhdx -c 'write -P 0x55 1M 64k' b.vhdx
refused "b: rct changes fails with 'reset' after qemu-io wrote" \
    b.vhdx "$IDB" "reset"
refused "b: ... with --json too" b.vhdx "$IDB" "reset" --json
eq "b: status: found reset-foreign-write" \
    "$(status_get b.vhdx found)" reset-foreign-write
t "b: qemu-img check is clean" qemu_check_clean b.vhdx
t "b: tidemark reads what qemu-io wrote" \
    cmp -s <(tm vhd read b.vhdx --offset "$MiB" --length $G) \
    <(head -c $G /dev/zero | tr '\000' '\125')
# The next tidemark write makes the reset durable: a new lineage.
tm vhd write b.vhdx --offset 0 --pattern 0x02 --length 10
refused "b: the old ID still fails after tidemark writes again" \
    b.vhdx "$IDB" "reset"
IDB2=$(tm rct seal b.vhdx)
t "b: a new seal gives an ID of a new lineage" \
    test "${IDB2:5:36}" != "${IDB:5:36}"
tm vhd write b.vhdx --offset $((5 * MiB)) --pattern 0x03 --length 100
eq "b: the new lineage tracks" "$(tm rct changes b.vhdx --since "$IDB2")" \
    "5242880 65536"
t "b: qemu-img check is still clean" qemu_check_clean b.vhdx
# Zeroes written by QEMU are a foreign write too.
t "b: qemu-io write -z" quiet qemu-io -f vhdx -c 'write -z 2M 64k' bz.vhdx
refused "b: rct changes fails with 'reset' after qemu-io write -z" \
    bz.vhdx "$IDB" "reset"
eq "b: status: found reset-foreign-write" \
    "$(status_get bz.vhdx found)" reset-foreign-write

# ---- tracked disks to damage -----------------------------------------------

# mk_tracked <name>: a 64 MiB disk, tracked, written, sealed ($ID), then
# written again; <name>.0.raw / <name>.1.raw are qemu-img's images at
# the seal and now, <name>.ref the ranges since the seal.
mk_tracked() {
    ID=
    if tm vhd new "$1.vhdx" --size 64M >/dev/null &&
        tm rct enable "$1.vhdx" >/dev/null &&
        tm vhd write "$1.vhdx" --offset 0 --pattern 0x01 \
            --length $((2 * MiB)) &&
        ID=$(tm rct seal "$1.vhdx") &&
        qemu_raw "$1.vhdx" "$1.0.raw" &&
        tm vhd write "$1.vhdx" --offset $((3 * MiB + 7)) --pattern 0x02 \
            --length 70000 &&
        tm vhd write "$1.vhdx" --offset 100 --pattern 0x03 --length 1 &&
        qemu_raw "$1.vhdx" "$1.1.raw" &&
        tm rct changes "$1.vhdx" --since "$ID" >"$1.ref" &&
        [ "$(paste -sd';' "$1.ref")" = "0 65536;3145728 131072" ]; then
        ok "$1: a tracked disk, written, sealed, written"
    else
        not_ok "$1: a tracked disk, written, sealed, written"
    fi
}

# cp3 <from> <to>: a disk and its sidecars.
cp3() {
    local x
    cp "$1.vhdx" "$2.vhdx"
    for x in rct mrt; do
        [ -e "$1.vhdx.$x" ] && cp "$1.vhdx.$x" "$2.vhdx.$x"
    done
    return 0
}

mk_tracked k
t "k: the reference ranges cover the changes" covers k.0.raw k.1.raw k.ref

# ---- (c) sidecars deleted --------------------------------------------------

cp3 k c1 && rm c1.vhdx.rct c1.vhdx.mrt
refused "c: both sidecars deleted: 'not enabled'" c1.vhdx "$ID" \
    "not enabled|disabled"
eq "c: status: not enabled" "$(status_get c1.vhdx enabled)" false
cp3 k c2 && rm c2.vhdx.rct
refused "c: .rct deleted: reset" c2.vhdx "$ID" "reset"
eq "c: .rct deleted: found reset-corrupt" "$(status_get c2.vhdx found)" \
    reset-corrupt
cp3 k c3 && rm c3.vhdx.mrt
refused "c: .mrt deleted: reset" c3.vhdx "$ID" "reset"
eq "c: .mrt deleted: found reset-corrupt" "$(status_get c3.vhdx found)" \
    reset-corrupt

# ---- (d) sidecars corrupted ------------------------------------------------

# scribble <file> <offset> <length>: random bytes over the file's own.
scribble() {
    head -c "$3" /dev/urandom |
        dd of="$1" bs=4096 seek="$2" oflag=seek_bytes conv=notrunc \
            status=none
}

cp3 k d1 && scribble d1.vhdx.rct 0 8192
refused "d: both .rct headers overwritten: reset" d1.vhdx "$ID" "reset"
eq "d: ... found reset-corrupt" "$(status_get d1.vhdx found)" reset-corrupt
cp3 k d2 && scribble d2.vhdx.rct 8192 $(( $(stat -c %s d2.vhdx.rct) - 8192 ))
refused "d: .rct bodies overwritten: reset" d2.vhdx "$ID" "reset"
cp3 k d3 && scribble d3.vhdx.mrt 0 4096
refused "d: .mrt header overwritten: reset" d3.vhdx "$ID" "reset"
cp3 k d4 && scribble d4.vhdx.rct 4096 64 && scribble d4.vhdx.rct 0 64
refused "d: the first bytes of both .rct slots overwritten: reset" \
    d4.vhdx "$ID" "reset"
# One slot: the current one (the other names an older state, which the
# .mrt proves stale: a reset), or the older one (ignored).
cur_slot() {
    $PY -c 'import struct,sys
d=open(sys.argv[1],"rb").read(8192)
s=[struct.unpack_from("<Q",d,i*4096+16)[0] for i in (0,1)]
print(0 if s[0]>s[1] else 1)' "$1"
}
cp3 k d5 && scribble d5.vhdx.rct $(( $(cur_slot d5.vhdx.rct) * 4096 + 24 )) 16
refused "d: the current .rct header damaged, the older one left: reset" \
    d5.vhdx "$ID" "reset"
cp3 k d6 &&
    scribble d6.vhdx.rct $(( (1 - $(cur_slot d6.vhdx.rct)) * 4096 + 24 )) 16
t "d: the older .rct header damaged: the same ranges" \
    same_lines <(tm rct changes d6.vhdx --since "$ID") k.ref
# Random damage anywhere: a reset, or ranges that still cover everything.
RANDOM=777
nreset=0
nranges=0
bad=0
for i in $(seq 1 24); do
    cp3 k dr
    f=dr.vhdx.rct
    [ $((i % 3)) = 0 ] && f=dr.vhdx.mrt
    size=$(stat -c %s $f)
    off=$(( (RANDOM * 32768 + RANDOM) % size ))
    scribble $f $off $((1 + RANDOM % 8))
    tm rct changes dr.vhdx --since "$ID" >dr.out 2>dr.err
    rc=$?
    if [ $rc = 1 ] && [ ! -s dr.out ] && grep -qi reset dr.err; then
        nreset=$((nreset + 1))
    elif [ $rc = 0 ] && $PY covers.py k.0.raw k.1.raw dr.out >/dev/null; then
        nranges=$((nranges + 1))
    else
        bad=$((bad + 1))
        diag "$f damaged at $off: rc $rc, $(head -c 200 dr.out) $(cat dr.err)"
    fi
done
t "d: random damage: a reset ($nreset) or covering ranges ($nranges)" \
    test $bad = 0

# ---- (e) another disk's sidecars -------------------------------------------

mk_tracked k2
IDK2=$ID
mk_tracked e
cp3 e e1 && cp k2.vhdx.rct e1.vhdx.rct && cp k2.vhdx.mrt e1.vhdx.mrt
refused "e: another disk's sidecars: this disk's ID fails" e1.vhdx "$ID" \
    "reset|another disk"
refused "e: another disk's sidecars: that disk's ID fails" e1.vhdx "$IDK2" \
    "reset|another disk"
cp3 e e2 && cp k2.vhdx.mrt e2.vhdx.mrt
refused "e: another disk's .mrt alone: reset" e2.vhdx "$ID" "reset"
# The same disk at another time: sidecars of a later state on an older
# copy, and the other way round.
cp3 e e3
tm vhd write e.vhdx --offset $((9 * MiB)) --pattern 0x09 --length 10
cp e.vhdx.rct e3.vhdx.rct && cp e.vhdx.mrt e3.vhdx.mrt
refused "e: newer sidecars on an older copy of the disk: reset" \
    e3.vhdx "$ID" "reset"
cp3 e e4
cp e.vhdx.rct e4.rct.old && cp e.vhdx.mrt e4.mrt.old
tm vhd write e4.vhdx --offset $((11 * MiB)) --pattern 0x0b --length 10
cp e4.rct.old e4.vhdx.rct && cp e4.mrt.old e4.vhdx.mrt
refused "e: older sidecars on a disk written since: reset" \
    e4.vhdx "$ID" "reset"

# ---- (f) resize ------------------------------------------------------------

mk_tracked f
t "f: vhd resize to 128M" quiet tm vhd resize f.vhdx --size 128M
refused "f: old ID fails 'reset' after a resize" f.vhdx "$ID" "reset"
eq "f: qemu-img sees the new size" \
    "$(qemu-img info -f vhdx --output=json f.vhdx | json_get - virtual-size)" \
    $((128 * MiB))
eq "f: still enabled" "$(status_get f.vhdx enabled)" true
IDF=$(tm rct seal f.vhdx)
tm vhd write f.vhdx --offset $((100 * MiB)) --pattern 0x0f --length 1
eq "f: a new ID tracks the resized disk" \
    "$(tm rct changes f.vhdx --since "$IDF")" "104857600 65536"
t "f: qemu-img check is clean" qemu_check_clean f.vhdx

# ---- (g) copied, moved, renamed together ----------------------------------

mk_tracked g
mkdir -p other moved
cp g.vhdx g.vhdx.rct g.vhdx.mrt other/
tm rct changes other/g.vhdx --since "$ID" >g.copy
t "g: a copy in another directory: the same ranges" same_lines g.copy g.ref
eq "g: ... found clean" "$(status_get other/g.vhdx found)" clean
mv g.vhdx g.vhdx.rct g.vhdx.mrt moved/
tm rct changes moved/g.vhdx --since "$ID" >g.moved
t "g: moved to another directory: the same ranges" same_lines g.moved g.ref
tm rct changes "$SCRATCH/moved/g.vhdx" --since "$ID" >g.abs
t "g: ... by its absolute path too" same_lines g.abs g.ref
mv moved/g.vhdx moved/h2.vhdx && mv moved/g.vhdx.rct moved/h2.vhdx.rct &&
    mv moved/g.vhdx.mrt moved/h2.vhdx.mrt
tm rct changes moved/h2.vhdx --since "$ID" >g.renamed
t "g: renamed with its sidecars: the same ranges" same_lines g.renamed g.ref
eq "g: ... found clean" "$(status_get moved/h2.vhdx found)" clean
tm vhd write other/g.vhdx --offset $((50 * MiB)) --pattern 0x50 --length 1
eq "g: the copy goes on tracking its own writes" \
    "$(tm rct changes other/g.vhdx --since "$ID" | paste -sd';')" \
    "$(paste -sd';' g.ref);52428800 65536"
t "g: the moved original is unaffected" \
    same_lines <(tm rct changes moved/h2.vhdx --since "$ID") g.ref

# ---- (h) QEMU reading the disk changes nothing -----------------------------

mk_tracked h
sums() { sha256sum h.vhdx h.vhdx.rct h.vhdx.mrt; }
sums >h.sums
t "h: qemu-img info" quiet qemu-img info -f vhdx h.vhdx
t "h: qemu-img check" qemu_check_clean h.vhdx
qemu_raw h.vhdx h.raw
t "h: qemu-img compare with its own export" \
    quiet qemu-img compare -f vhdx -F raw h.vhdx h.raw
t "h: qemu-io -r read" quiet qemu-io -r -f vhdx -c 'read 0 64k' h.vhdx
t "h: the disk and sidecars are byte for byte as before" \
    same_lines <(sums) h.sums
eq "h: status: found clean" "$(status_get h.vhdx found)" clean
t "h: the same ranges" same_lines <(tm rct changes h.vhdx --since "$ID") \
    h.ref
tm vhd write h.vhdx --offset $((30 * MiB)) --pattern 0x30 --length 1
eq "h: tidemark writes after QEMU read: tracked, no reset" \
    "$(tm rct changes h.vhdx --since "$ID" | paste -sd';')" \
    "$(paste -sd';' h.ref);31457280 65536"

finish
