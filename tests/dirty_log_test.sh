#!/bin/bash
# SPDX-License-Identifier: MIT
# dirty_log_test.sh - tidemark replays dirty logs as the spec says.
#
# (a) Files whose newest BAT update exists only in the log, built by
#     tools/mkdirty.py from copies before and after an allocating write
#     (QEMU's own log entry, or our own multi-entry, wrapped, torn,
#     zero-descriptor sequences; FlushedFileOffset/LastFileOffset past EOF):
#       - read-only commands (info, cat, read, check) replay into memory:
#         the content equals the post-write content and QEMU's replay
#         ('qemu-img check -r all' on a copy), and the file is unchanged;
#       - 'vhd check --repair' replays into the file: then qemu-img check is
#         clean, the content is right, LogGuid is zero, the DataWriteGuid is
#         unchanged (our replay is no user-visible change) and the
#         FileWriteGuid is new; 'vhd write' replays, then writes;
#       - FlushedFileOffset past EOF: every command refuses ("truncated")
#         and the file is unchanged.
#     Also tidemark-made before/after files, 512- and 4096-byte sectors.
# (b) qemu-io killed (SIGKILL) during a long run of allocating writes:
#     when that leaves a log to replay, tidemark's read-only replay equals
#     QEMU's; skipped if no attempt leaves one.
. "${TM_TOOLS:-$(dirname "$0")/tools}/lib.sh"
need_tools qemu-img qemu-io cmp sha256sum
need_tidemark
mk_scratch
cd "$SCRATCH" || exit 1
MKDIRTY="$PY $TM_TOOLS/mkdirty.py"
have7z=0
command -v 7zz >/dev/null 2>&1 && have7z=1

sha() { sha256sum "$1" | cut -d' ' -f1; }
quiet() { "$@" >/dev/null; }

# one_line_with <stderr file> <keyword...>: exactly one line, holding a
# keyword (case-insensitive).
one_line_with() {
    local f=$1 k
    shift
    if [ "$(wc -l <"$f")" -ne 1 ]; then
        diag "stderr has $(wc -l <"$f") lines: $(cat "$f")"
        return 1
    fi
    for k in "$@"; do
        grep -qiF -- "$k" "$f" && return 0
    done
    diag "stderr lacks ($*): $(cat "$f")"
    return 1
}

# replayed_ok <name> <dirty vhdx> <expected raw> [qemu-oracle yes|no]
# [last_file_offset]
replayed_ok() {
    local name=$1 d=$2 exp=$3 qo=${4:-yes} last=${5:-0}
    local before rc
    before=$(sha "$d")
    local dwg fwg
    dwg=$(cur_get "$d" data_write_guid)
    fwg=$(cur_get "$d" file_write_guid)
    eq "$name: the fixture's log GUID is set in both headers" \
        "$(dump_get "$d" headers.0.log_guid_zero headers.1.log_guid_zero |
           tr '\n' ' ')" "false false "

    # Read-only commands: replay into memory, never into the file.
    local info
    info=$(tm vhd info --json "$d")
    eq "$name: vhd info reports the replay" \
        "$(echo "$info" | json_get - log_replayed)" true
    t "$name: vhd cat (read-only replay) equals the written content" \
        cat_equals "$d" "$exp"
    t "$name: vhd read of the logged block" read_equals "$d" "$exp" \
        $((10 * 1024 * 1024 - 4096)) $((200 * 1024))
    tm vhd check "$d" >check.out 2>&1
    rc=$?
    if [ "$rc" -le 1 ]; then
        ok "$name: read-only vhd check runs (rc $rc)"
    else
        not_ok "$name: read-only vhd check runs"
        diag "rc $rc: $(cat check.out)"
    fi
    t "$name: vhd dump runs" quiet tm vhd dump "$d"
    eq "$name: read-only commands leave the file unchanged" "$(sha "$d")" \
        "$before"

    # QEMU's replay of a copy.
    if [ "$qo" = yes ]; then
        cp "$d" q.vhdx
        qemu-img check -r all q.vhdx >/dev/null 2>&1
        qemu_raw q.vhdx q.raw
        t "$name: QEMU's replay agrees (fixture sanity)" cmp q.raw "$exp"
        rm -f q.vhdx q.raw
    fi

    # Read-write: replay into the file.
    cp "$d" r.vhdx
    if tm vhd check --repair r.vhdx >check.out 2>&1; then
        ok "$name: vhd check --repair succeeds"
    else
        not_ok "$name: vhd check --repair succeeds"
        diag "$(cat check.out)"
    fi
    eq "$name: after repair the log GUID is zero" \
        "$(cur_get r.vhdx log_guid_zero)" true
    eq "$name: after repair both headers are valid" \
        "$(dump_get r.vhdx headers.0.valid headers.1.valid | tr '\n' ' ')" \
        "true true "
    eq "$name: replay keeps the DataWriteGuid" \
        "$(cur_get r.vhdx data_write_guid)" "$dwg"
    local nfwg
    nfwg=$(cur_get r.vhdx file_write_guid)
    if [ "$nfwg" != "$fwg" ]; then
        ok "$name: replay sets a new FileWriteGuid"
    else
        not_ok "$name: replay sets a new FileWriteGuid"
    fi
    eq "$name: after repair no problem for the dumper" \
        "$(dump_get r.vhdx problems)" "[]"
    if [ "$qo" != 4k ]; then
        t "$name: after repair qemu-img check is clean" qemu_check_clean r.vhdx
        qemu_raw r.vhdx r.raw
        t "$name: after repair qemu-img reads the written content" \
            cmp r.raw "$exp"
        rm -f r.raw
    elif [ "$have7z" = 1 ]; then
        rm -rf x
        7zz x -tVHDX -y -ox r.vhdx >/dev/null 2>&1
        t "$name: after repair 7-Zip reads the written content" \
            cmp x/r.img "$exp"
        rm -rf x
    fi
    t "$name: after repair vhd cat equals the written content" \
        cat_equals r.vhdx "$exp"
    t "$name: after repair vhd check is clean" tm vhd check r.vhdx
    if [ "$last" -gt 0 ]; then
        local sz
        sz=$(stat -c %s r.vhdx)
        if [ "$sz" -ge "$last" ]; then
            ok "$name: replay extends the file to LastFileOffset"
        else
            not_ok "$name: replay extends the file to LastFileOffset"
            diag "size $sz < LastFileOffset $last"
        fi
    fi
    rm -f r.vhdx check.out

    # 'vhd write' opens read-write: it replays into the file, then writes.
    cp "$d" w.vhdx
    cp "$exp" w.raw
    t "$name: vhd write on the dirty file succeeds" \
        tm_write w.vhdx w.raw $((10 * 1024 * 1024 + 60000)) 0x77 5000
    eq "$name: after vhd write the log GUID is zero" \
        "$(cur_get w.vhdx log_guid_zero)" true
    t "$name: after vhd write the content is replay + write" \
        cat_equals w.vhdx w.raw
    if [ "$qo" != 4k ]; then
        qemu_raw w.vhdx w2.raw
        t "$name: after vhd write qemu-img agrees" cmp w2.raw w.raw
    fi
    rm -f w.vhdx w.raw w2.raw
}

# ---- (a) QEMU-made before/after -------------------------------------------

qemu-img create -q -f vhdx -o subformat=dynamic,block_size=1M,block_state_zero=off \
    before.vhdx 64M
$MKDIRTY --require-regions before.vhdx
qemu-io -f vhdx -c "write -P 0x11 0 64k" -c "write -P 0x12 1M 1M" \
    -c "write -P 0x13 63M 4k" before.vhdx >/dev/null
cp before.vhdx after.vhdx
qemu-io -f vhdx -c "write -P 0x5c 10M 128k" after.vhdx >/dev/null
qemu_raw after.vhdx expected.raw
qemu_raw before.vhdx stale.raw
if cmp -s expected.raw stale.raw; then
    echo "Bail out! the allocating write changed nothing"
    exit 1
fi

# variant <name> <qemu oracle yes|no> <mkdirty options...>
variant() {
    local name=$1 qo=$2
    shift 2
    rm -f d.vhdx
    if ! $MKDIRTY "$@" before.vhdx after.vhdx d.vhdx >mk.json; then
        not_ok "$name: mkdirty.py $*"
        return
    fi
    local exp=expected.raw
    local z
    z=$(json_get mk.json zeroed)
    if [ "$z" != null ]; then
        cp expected.raw exp_z.raw
        zero_range exp_z.raw "$(echo "$z" | json_get - virtual_offset)" \
            "$(echo "$z" | json_get - length)"
        exp=exp_z.raw
    fi
    local last
    last=$(json_get mk.json last_file_offset)
    [ "$last" = null ] && last=0
    # Sanity: without the log the fixture reads the stale content.
    if $DUMP --get bat.census.payload.FULLY_PRESENT d.vhdx |
        grep -qx "$(dump_get before.vhdx bat.census.payload.FULLY_PRESENT)"; then
        ok "$name: fixture's BAT is stale without the log"
    else
        not_ok "$name: fixture's BAT is stale without the log"
    fi
    replayed_ok "$name" d.vhdx "$exp" "$qo" "$last"
    rm -f d.vhdx exp_z.raw
}

variant qemu-entry yes
variant own-1-entry yes --entries 1
variant own-3-entries yes --entries 3
# QEMU's search does not check the head's Tail: it replays the lone entry at
# offset 0 and misses the first one, at the end of the log (see README).
variant own-wrapped no --entries 2 --wrap
variant own-zero-descriptor yes --entries 2 --zero-desc
variant own-torn-head yes --entries 2 --torn-head
# QEMU extends only as far as descriptors reach, not to LastFileOffset.
variant qemu-last-past-eof yes --last-past-eof
variant own-last-past-eof yes --entries 2 --last-past-eof

# FlushedFileOffset past EOF: the file was truncated; refuse everything.
for v in "qemu" "own --entries 2"; do
    set -- $v
    name=flushed-past-eof-$1
    shift
    rm -f d.vhdx
    $MKDIRTY --flushed-past-eof "$@" before.vhdx after.vhdx d.vhdx >/dev/null ||
        { not_ok "$name: mkdirty.py"; continue; }
    h=$(sha d.vhdx)
    for cmd in "info" "cat" "check" "check --repair" \
        "write --offset 0 --pattern 1 --length 512"; do
        tm vhd $cmd d.vhdx >/dev/null 2>err.txt
        rc=$?
        eq "$name: vhd $cmd fails with exit 1" "$rc" 1
        t "$name: vhd $cmd says why in one line" one_line_with err.txt \
            truncated flushed shorter
    done
    eq "$name: the refused file is unchanged" "$(sha d.vhdx)" "$h"
    cp d.vhdx q.vhdx
    qemu-img check -r all q.vhdx >/dev/null 2>&1
    rc=$?
    diag "$name: qemu-img check -r all exits $rc (QEMU refuses too: EINVAL)"
    rm -f q.vhdx err.txt
done
rm -f before.vhdx after.vhdx expected.raw stale.raw mk.json

# ---- (a) tidemark-made before/after, 512 and 4096-byte sectors -------------

ours_dirty() {
    local name=$1 ls=$2 qo=$3
    rm -f before.vhdx after.vhdx
    tm vhd new before.vhdx --size 64M --block-size 1M --logical-sector "$ls" ||
        { not_ok "$name: vhd new"; return; }
    truncate -s 64M expected.raw
    tm_write before.vhdx expected.raw 0 0x21 65536
    tm_write before.vhdx expected.raw $((5 * 1024 * 1024)) 0x22 8192
    cp before.vhdx after.vhdx
    tm_write after.vhdx expected.raw $((10 * 1024 * 1024 - 4096)) 0x23 12288
    rm -f d.vhdx
    if ! $MKDIRTY --entries 2 before.vhdx after.vhdx d.vhdx >/dev/null; then
        not_ok "$name: mkdirty.py"
        return
    fi
    t "$name: the post-write file reads right (fixture sanity)" \
        cat_equals after.vhdx expected.raw
    replayed_ok "$name" d.vhdx expected.raw "$qo"
    rm -f before.vhdx after.vhdx d.vhdx expected.raw
}
ours_dirty tidemark-512 512 yes
ours_dirty tidemark-4096 4096 4k

# ---- (b) qemu-io killed mid-way -------------------------------------------

for i in $(seq 0 2047); do
    echo "write -P 0x$(printf %02x $((i % 250 + 1))) ${i}M 4k"
done >cmds
found=0
noseq=0
for attempt in 1 2 3 4 5 6 7 8 9 10 11 12; do
    rm -f k.vhdx
    qemu-img create -q -f vhdx \
        -o subformat=dynamic,block_size=1M,block_state_zero=off k.vhdx 2G
    $MKDIRTY --require-regions k.vhdx
    qemu-io -f vhdx k.vhdx <cmds >/dev/null 2>&1 &
    pid=$!
    sleep "0.$((RANDOM % 8 + 2))"
    kill -9 "$pid" 2>/dev/null
    wait "$pid" 2>/dev/null
    [ "$(cur_get k.vhdx log_guid_zero)" = false ] || continue
    if [ "$(dump_get k.vhdx log.active)" = null ]; then
        # LogGuid set but no entry carries it: QEMU died between its
        # header update and its log write.  MS-VHDX: refuse.  (QEMU opens.)
        if [ "$noseq" = 0 ]; then
            noseq=1
            tm vhd cat k.vhdx >/dev/null 2>err.txt
            eq "killed qemu-io, LogGuid without entries: vhd cat refuses" $? 1
            t "killed qemu-io, LogGuid without entries: error names the log" \
                one_line_with err.txt log
        fi
        continue
    fi
    found=1
    diag "attempt $attempt: killed qemu-io left log sequence" \
        "$(dump_get k.vhdx log.active.seqs)"
    h=$(sha k.vhdx)
    cp k.vhdx q.vhdx
    qemu-img check -r all q.vhdx >/dev/null 2>&1
    qemu_raw q.vhdx q.raw
    t "killed qemu-io: vhd cat (read-only replay) equals QEMU's replay" \
        cat_equals k.vhdx q.raw
    eq "killed qemu-io: read-only replay leaves the file unchanged" \
        "$(sha k.vhdx)" "$h"
    if tm vhd check --repair k.vhdx >check.out 2>&1; then
        ok "killed qemu-io: vhd check --repair succeeds"
    else
        not_ok "killed qemu-io: vhd check --repair succeeds"
        diag "$(cat check.out)"
    fi
    t "killed qemu-io: after repair qemu-img check is clean" \
        qemu_check_clean k.vhdx
    qemu_raw k.vhdx k.raw
    t "killed qemu-io: after repair the content equals QEMU's replay" \
        cmp k.raw q.raw
    rm -f q.vhdx q.raw k.raw
    break
done
if [ "$found" = 0 ]; then
    ok "killed qemu-io # SKIP no attempt left a log to replay"
fi
rm -f k.vhdx cmds

finish
