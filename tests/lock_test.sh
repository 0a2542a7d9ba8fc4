#!/bin/bash
# SPDX-License-Identifier: MIT
# lock_test.sh - a disk a running QEMU has open is not written behind its
# back.  qemu-io (QEMU's block layer, with its file locking) holds the
# image open; tidemark's writers (write, check --repair, convert onto it)
# must refuse with a clear "in use" error and leave the file alone, while
# readers (info, cat) still work.  Once QEMU lets go, writing works, and
# while tidemark holds the file for writing, QEMU is refused in turn.
. "${TM_TOOLS:-$(dirname "$0")/tools}/lib.sh"
need_tools qemu-io qemu-img sha256sum timeout mkfifo
need_tidemark
mk_scratch
cd "$SCRATCH" || exit 1

QPID=
stop_qemu() {
    if [ -n "$QPID" ]; then
        exec 7>&- 2>/dev/null
        wait "$QPID" 2>/dev/null
        QPID=
    fi
}
trap 'stop_qemu; rm -rf "$SCRATCH"' EXIT

tm vhd new disk.vhdx --size 64M --block-size 1M >/dev/null
tm vhd write disk.vhdx --offset 0 --pattern 0x61 --length 4096
truncate -s 64M other.raw

# qemu-io reads commands from a FIFO we hold open, so it keeps the image.
mkfifo cmds
qemu-io -f vhdx disk.vhdx <cmds >qemu.out 2>&1 &
QPID=$!
exec 7>cmds
# locked: whether some process holds an OFD lock on disk.vhdx.
ino=$(stat -c %i disk.vhdx)
locked() { grep -q "OFDLCK.*:$ino " /proc/locks 2>/dev/null; }
wait_locked() {
    for _ in $(seq 100); do
        locked && return 0
        sleep 0.1
    done
    return 1
}
t "QEMU has locked the disk" wait_locked
before=$(sha256sum disk.vhdx | cut -d' ' -f1)

timeout 20 "$TIDEMARK" vhd write disk.vhdx --offset 0 --pattern 0x62 \
    --length 512 >/dev/null 2>w.err
eq "write while QEMU has the disk: refused" "$?" 1
t "write: error says the file is in use" grep -q 'in use' w.err
timeout 20 "$TIDEMARK" vhd check --repair disk.vhdx >/dev/null 2>r.err
eq "check --repair while QEMU has the disk: refused" "$?" 1
timeout 20 "$TIDEMARK" vhd convert other.raw disk.vhdx >/dev/null 2>c.err
eq "convert onto the disk QEMU has: refused" "$?" 1
t "convert: error says the file is in use" grep -q 'in use' c.err
eq "the file is untouched" "$(sha256sum disk.vhdx | cut -d' ' -f1)" "$before"
timeout 20 "$TIDEMARK" vhd info disk.vhdx >/dev/null 2>i.err
eq "info still reads it" "$?" 0
timeout 20 "$TIDEMARK" vhd read disk.vhdx --offset 0 --length 4096 | od -An -tx1 | sort -u >r.out
t "read still reads it" grep -qx ' 61 61 61 61 61 61 61 61 61 61 61 61 61 61 61 61' r.out

echo quit >&7
stop_qemu
t "QEMU's locks are gone" bash -c '! grep -q "OFDLCK.*:'"$ino"' " /proc/locks'
timeout 20 "$TIDEMARK" vhd write disk.vhdx --offset 0 --pattern 0x62 \
    --length 512 2>w2.err
eq "write after QEMU closed it: works" "$?" 0

# The other way round: while tidemark writes from a pipe that stays open,
# QEMU cannot open the image for writing.
mkfifo data
timeout 60 "$TIDEMARK" vhd write disk.vhdx --offset 1M <data 2>tw.err &
TPID=$!
exec 8>data
t "tidemark has locked the disk" wait_locked
timeout 20 qemu-io -f vhdx -c 'write -P 0x63 0 512' disk.vhdx >q.out 2>&1
t "QEMU is refused while tidemark writes" grep -qi 'lock' q.out
head -c 4096 /dev/zero | tr '\0' 'd' >&8
exec 8>&-
wait "$TPID"
eq "tidemark's write completes" "$?" 0
timeout 20 "$TIDEMARK" vhd read disk.vhdx --offset 1M --length 4096 | od -An -c | sort -u >d.out
t "and its data is there" grep -qx '   d   d   d   d   d   d   d   d   d   d   d   d   d   d   d   d' d.out
t "qemu-img check clean" qemu_check_clean disk.vhdx

finish
