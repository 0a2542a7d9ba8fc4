#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# rct_cli_test.sh - 'tidemark rct' end to end: enable, status, seal, then
# 'vhd write' / 'vhd discard' / 'vhd resize' through change tracking, and
# 'rct changes' listing exactly the granules written (text and --json,
# paged through small query arrays), between two IDs and inside a span;
# disable and re-enable; every failure class (unknown, malformed and
# foreign IDs, disabled, untracked, reset by a resize or by a write from
# another program) exits 1 with a message naming it; usage errors exit 2.
# A writer killed mid-write leaves tracking that recovers to cover what
# it wrote, and 'rct status' reads the disk while the writer holds it.
. "${TM_TOOLS:-$(dirname "$0")/tools}/lib.sh"
need_tools python3 timeout mkfifo
need_tidemark
mk_scratch
cd "$SCRATCH" || exit 1

WPID=
stop_writer() {
    if [ -n "$WPID" ]; then
        kill -9 "$WPID" 2>/dev/null
        wait "$WPID" 2>/dev/null
        WPID=
    fi
    exec 7>&- 2>/dev/null
}
trap 'stop_writer; rm -rf "$SCRATCH"' EXIT

KiB=1024
MiB=$((1024 * 1024))
ID_RE='^rctX:[0-9a-f]{8}(:[0-9a-f]{4}){3}:[0-9a-f]{12}:[0-9a-f]{8}$'

# run ARGS...: tidemark with stdout in out, stderr in err; sets rc.
run() { tm "$@" >out 2>err </dev/null; rc=$?; }

# fails DESC PATTERN ARGS...: exit 1, nothing on stdout, one stderr line
# "tidemark: rct <verb>: ..." that matches PATTERN (grep -E).
fails() {
    local d=$1 pat=$2
    shift 2
    run "$@"
    if [ "$rc" -eq 1 ] && [ ! -s out ] && [ "$(wc -l <err)" -eq 1 ] &&
       grep -qE "^tidemark: $1 $2: .*$pat" err; then
        ok "$d"
    else
        not_ok "$d"
        diag "exit $rc, stdout '$(head -c 200 out)', stderr '$(cat err)'"
    fi
}

# usage DESC ARGS...: exit 2, one stderr line naming a --help.
usage() {
    local d=$1
    shift
    run "$@"
    if [ "$rc" -eq 2 ] && [ "$(wc -l <err)" -eq 1 ] &&
       grep -q "^tidemark: .*see 'tidemark .*--help'$" err; then
        ok "usage error: $d"
    else
        not_ok "usage error: $d"
        diag "exit $rc, stderr '$(cat err)'"
    fi
}

# changes DISK ARGS...: 'rct changes' output, or "exit N" on failure.
changes() {
    local o
    o=$(tm rct changes "$@" 2>err) || { echo "exit $?"; return; }
    echo "$o"
}

# seal DISK: prints the new ID (and fails the test if it is no ID).
seal() {
    local id
    id=$(tm rct seal "$1" 2>err)
    if [ $? -ne 0 ] || ! [[ $id =~ $ID_RE ]]; then
        diag "rct seal $1: '$id' $(cat err)"
        echo "none"
        return
    fi
    echo "$id"
}

# ---- a disk without tracking ------------------------------------------------

d=disk.vhdx
tm vhd new $d --size 64M --block-size 1M >/dev/null
run rct status $d
eq "status of an untracked disk exits 0" "$rc" 0
t "status of an untracked disk: enabled no" grep -qE '^enabled: +no$' out
t "status of an untracked disk: never enabled" \
    grep -qE '^granularity: +none' out
t "status of an untracked disk: no ID" grep -qE '^most recent id: +none$' out
run rct status --json $d
t "status --json of an untracked disk" python3 -c '
import json, sys
d = json.load(open("out"))
assert d == {"path": "disk.vhdx", "enabled": False, "granularity": 0,
             "most_recent_id": None, "newer_changes": False,
             "sealed_ids": 0, "found": "clean"}, d
'
fails "seal of an untracked disk" "not enabled" rct seal $d
fails "changes of an untracked disk" "not enabled" \
    rct changes $d --since rctX:5bfde23b:ce75:4303:b54f:6c18394f105c:00000001
tm vhd write $d --offset 0 --pattern 1 --length 4K
t "writes to an untracked disk make no tracking files" \
    test ! -e $d.rct -a ! -e $d.mrt

# ---- enable, seal, write, changes -------------------------------------------

run rct enable $d --granularity 64K
eq "enable exits 0" "$rc" 0
eq "enable says so" "$(cat out)" \
    "change tracking enabled on $d (granularity 64 KiB)"
t "enable makes the tracking files" test -s $d.rct -a -s $d.mrt
run rct enable $d
eq "enable again: already" "$(cat out)" \
    "change tracking already enabled on $d (granularity 64 KiB)"
fails "enable with another granularity is refused" "turn it off" \
    rct enable $d --granularity 4K
run rct status $d
t "status: enabled yes" grep -qE '^enabled: +yes$' out
t "status: granularity" grep -qE '^granularity: +65536 \(64 KiB\)$' out
t "status: nothing sealed" grep -qE '^most recent id: +none$' out
t "status: found clean" grep -qE '^found: +clean$' out

id1=$(seal $d)
t "seal prints an ID" test "$id1" != none
eq "nothing changed since a fresh ID" "$(changes $d --since "$id1")" ""
tm vhd write $d --offset 1M --pattern 0xab --length 4K
eq "a 4 KiB write at 1 MiB is one 64 KiB granule" \
    "$(changes $d --since "$id1")" "1048576 65536"
run rct status --json $d
t "status --json after a write" python3 -c '
import json, sys
d = json.load(open("out"))
assert d["enabled"] is True and d["granularity"] == 65536, d
assert d["most_recent_id"] == sys.argv[1], d
assert d["newer_changes"] is True and d["sealed_ids"] == 1, d
assert d["found"] == "clean" and d["path"] == "disk.vhdx", d
' "$id1"
run rct changes $d --since "$id1" --json
t "changes --json" python3 -c '
import json, sys
d = json.load(open("out"))
assert d == {"path": "disk.vhdx", "since": sys.argv[1], "until": None,
             "offset": 0, "length": 64 << 20,
             "ranges": [{"offset": 1048576, "length": 65536}],
             "changed_bytes": 65536}, d
' "$id1"

id2=$(seal $d)
eq "nothing changed since the second ID" "$(changes $d --since "$id2")" ""
eq "between the two IDs: the write" \
    "$(changes $d --since "$id1" --until "$id2")" "1048576 65536"
head -c $((200 * KiB)) /dev/urandom >data
tm vhd write $d --offset $((5 * MiB + 1000)) <data
eq "a write from stdin: its granules" "$(changes $d --since "$id2")" \
    "5242880 262144"
eq "since the first ID: both" "$(changes $d --since "$id1")" \
    "1048576 65536
5242880 262144"
run rct changes $d --since "$id1" --until "$id2"
t "between two IDs: a superset, with the write before the second" \
    grep -qx "1048576 65536" out
tm vhd discard $d --offset 10M --length 1M
eq "a discard is tracked" "$(changes $d --since "$id2")" \
    "5242880 262144
10485760 1048576"
eq "inside a span: clipped at both ends" \
    "$(changes $d --since "$id1" --offset 1050000 --length 4200000)" \
    "1050000 64112
5242880 7120"
eq "a span with nothing changed" \
    "$(changes $d --since "$id1" --offset 2M --length 1M)" ""
eq "from an offset to the end" "$(changes $d --since "$id2" --offset 10M)" \
    "10485760 1048576"
eq "an empty span at the end" "$(changes $d --since "$id2" --offset 64M)" ""
run rct changes $d --since "$id1" --offset 1M --length 64K --json
t "changes --json of a span" python3 -c '
import json, sys
d = json.load(open("out"))
assert d["offset"] == 1 << 20 and d["length"] == 65536, d
assert d["ranges"] == [{"offset": 1 << 20, "length": 65536}], d
assert d["changed_bytes"] == 65536, d
'
run rct changes $d --since "$id2" --offset 2M --length 1M --json
t "changes --json with no ranges" python3 -c '
import json
d = json.load(open("out"))
assert d["ranges"] == [] and d["changed_bytes"] == 0, d
'
run vhd read $d --offset 1M --length 4K
t "the tracked write landed" \
    cmp -s out <(head -c 4096 /dev/zero | tr '\0' '\253')

# ---- failures ---------------------------------------------------------------

fails "a span past the end" "past the end" \
    rct changes $d --since "$id1" --offset 63M --length 2M
fails "an offset past the end" "past the end" \
    rct changes $d --since "$id1" --offset 65M
never=${id2%:*}:ffffffff
fails "an ID never issued" "'$never' was never issued" \
    rct changes $d --since "$never"
fails "a malformed ID" "'bogus' is not a change tracking ID" \
    rct changes $d --since bogus
other=rctX:5bfde23b:ce75:4303:b54f:6c18394f105c:00000001
fails "an ID of another disk" "'$other' belongs to another disk" \
    rct changes $d --since "$other"
fails "--until older than --since" "is older than" \
    rct changes $d --since "$id2" --until "$id1"
fails "an unknown --until" "was never issued" \
    rct changes $d --since "$id1" --until "$never"
fails "changes of a missing file" "cannot open" \
    rct changes none.vhdx --since "$id1"
fails "status of a missing file" "cannot open" rct status none.vhdx
fails "enable on a missing file" "cannot open" rct enable none.vhdx
t "a failed enable creates nothing" test ! -e none.vhdx -a ! -e none.vhdx.rct

# ---- paging: the answer does not depend on the query array's size -----------

p=paged.vhdx
tm vhd new $p --size 16M --block-size 1M >/dev/null
tm rct enable $p --granularity 4K >/dev/null
pid0=$(seal $p)
want=""
for i in 0 3 6 7 9 20 100 101 102 500 1000 4095; do
    tm vhd write $p --offset $((i * 4 * KiB + 100)) --pattern 7 --length 10
done
# granules 6-7 and 100-102 join; the rest stand alone
want="0 4096
12288 4096
24576 8192
36864 4096
81920 4096
409600 12288
2048000 4096
4096000 4096
16773120 4096"
eq "scattered writes: one range per run of granules" \
    "$(changes $p --since "$pid0")" "$want"
for n in 1 2 3 8; do
    eq "paged $n ranges per query: the same" \
        "$(TIDEMARK_RCT_QUERY_RANGES=$n changes $p --since "$pid0")" "$want"
done
eq "paged, inside a span" \
    "$(TIDEMARK_RCT_QUERY_RANGES=1 changes $p --since "$pid0" \
        --offset 20000 --length 400000)" \
    "24576 8192
36864 4096
81920 4096
409600 10400"
TIDEMARK_RCT_QUERY_RANGES=2 tm rct changes $p --since "$pid0" --json >out
t "paged --json: every range, summed" python3 -c '
import json, sys
d = json.load(open("out"))
want = [tuple(map(int, l.split())) for l in sys.argv[1].splitlines()]
got = [(r["offset"], r["length"]) for r in d["ranges"]]
assert got == want, got
assert d["changed_bytes"] == sum(l for _, l in want), d
' "$want"
TIDEMARK_RCT_QUERY_RANGES=0 usage "a bad TIDEMARK_RCT_QUERY_RANGES" \
    rct changes $p --since "$pid0"

# ---- disable, enable again --------------------------------------------------

run rct disable $d
eq "disable says so" "$(cat out)" "change tracking disabled on $d"
run rct disable $d
eq "disable again: already off" "$(cat out)" \
    "change tracking already off on $d"
fails "changes while disabled" "disabled" rct changes $d --since "$id1"
fails "seal while disabled" "disabled" rct seal $d
run rct status --json $d
t "status while disabled" python3 -c '
import json
d = json.load(open("out"))
assert d["enabled"] is False and d["granularity"] == 65536, d
'
tm vhd write $d --offset 20M --pattern 1 --length 1
eq "writes while disabled work" "$?" 0
tm rct enable $d >/dev/null
fails "enabled again: older IDs were reset" \
    "'$id1': tracking was reset since: tracking was disabled" \
    rct changes $d --since "$id1"

# ---- resets: resize, a write by another program -----------------------------

id3=$(seal $d)
tm vhd write $d --offset 0 --pattern 2 --length 1
run vhd resize $d --size 128M
t "resize of a tracked disk" grep -q "^resized $d: 67108864 -> 134217728" out
fails "a resize resets tracking" \
    "'$id3': tracking was reset since: the disk was resized" \
    rct changes $d --since "$id3"
id4=$(seal $d)
tm vhd write $d --offset 100M --pattern 2 --length 1
eq "tracking goes on at the new size" "$(changes $d --since "$id4")" \
    "104857600 65536"

if command -v qemu-io >/dev/null; then
    id5=$(seal $d)
    qemu-io -f vhdx -c 'write -P 0x33 0 4k' $d >/dev/null 2>&1
    run rct status --json $d
    t "a write by QEMU shows as a foreign write" python3 -c '
import json
d = json.load(open("out"))
assert d["found"] == "reset-foreign-write", d
assert d["most_recent_id"] is None and d["sealed_ids"] == 0, d
'
    fails "after a foreign write older IDs fail" \
        "'$id5': tracking was reset since: the disk was written without" \
        rct changes $d --since "$id5"
else
    ok "# SKIP qemu-io is not installed: no foreign write test"
fi

# ---- a writer that holds the disk, then dies mid-write ----------------------

c=crash.vhdx
tm vhd new $c --size 64M --block-size 1M >/dev/null
tm rct enable $c >/dev/null
cid=$(seal $c)
mkfifo feed
"$TIDEMARK" vhd write $c --offset 0 <feed >/dev/null 2>&1 &
WPID=$!
exec 7>feed
head -c 8M /dev/zero | tr '\0' '\1' >&7
marked=""
for _ in $(seq 100); do
    marked=$(changes $c --since "$cid")
    [ -n "$marked" ] && [ "${marked#exit}" = "$marked" ] && break
    sleep 0.1
done
t "changes read the disk while a writer holds it" \
    test -n "$marked" -a "${marked#exit}" = "$marked"
run rct status --json $c
t "status while a writer holds the disk: recovered" python3 -c '
import json
d = json.load(open("out"))
assert d["enabled"] is True and d["found"] == "recovered", d
'
fails "seal while a writer holds the disk" "in use" rct seal $c
fails "enable while a writer holds the disk" "in use" rct enable $c
stop_writer
run rct status $c
t "after the writer died: recovered after a crash" \
    grep -qE '^found: +recovered after a crash$' out
t "the recovered changes cover the write" python3 -c '
import sys
r = [tuple(map(int, l.split())) for l in sys.argv[1].splitlines()]
assert r and r[0][0] == 0 and r[0][1] >= 8 << 20, r
' "$(changes $c --since "$cid")" || diag "$(cat err)"
cid2=$(seal $c)
t "seal after the crash" test "$cid2" != none
run rct status $c
t "a writer's open made the recovery durable" grep -qE '^found: +clean$' out ||
    diag "$(cat out err)"
t "the old ID still answers after recovery" python3 -c '
import sys
r = [tuple(map(int, l.split())) for l in sys.argv[1].splitlines()]
assert r and r[0][0] == 0 and r[0][1] >= 8 << 20, r
' "$(changes $c --since "$cid")" || diag "$(cat err)"

# ---- usage errors -----------------------------------------------------------

usage "changes without --since" rct changes $d
usage "changes without a path" rct changes --since "$id4"
usage "changes with a bad --offset" rct changes $d --since "$id4" --offset x
usage "changes with a bad --length" rct changes $d --since "$id4" --length -1
usage "status with two paths" rct status $d $d
usage "seal without a path" rct seal
usage "enable with granularity 3K" rct enable $d --granularity 3K
usage "enable with granularity 2K" rct enable $d --granularity 2K
usage "enable with granularity 4M" rct enable $d --granularity 4M
usage "enable with granularity 12Q" rct enable $d --granularity 12Q
usage "disable with a flag it lacks" rct disable --json $d
usage "status --json with a value" rct status --json=yes $d
usage "no verb" rct
usage "unknown verb" rct frob

finish
