#!/bin/bash
# SPDX-License-Identifier: MIT
# interop_qemu_test.sh - tidemark and QEMU read each other's VHDX files.
#
# 1. Files made and written by tidemark (fixed and dynamic, block sizes
#    1M..256M, sizes that are not block multiples, a sparse 6 GiB disk whose
#    writes cross the 4 GiB chunk) pass 'qemu-img check', the independent
#    dumper's canonical-writer rules, and read back identically through
#    'qemu-img convert', 'tidemark vhd cat' and a raw shadow file that got
#    the same writes.
# 2. Files made and written by QEMU (dynamic with block_state_zero on/off,
#    fixed both ways, block sizes 1M/32M/256M, a 6 GiB sparse disk) read
#    identically through 'tidemark vhd cat'/'vhd read' and qemu-img; then
#    tidemark writes into them and QEMU still checks and reads them.
# 3. 'vhd convert' round trips: raw -> vhdx -> raw, both sparse.
. "${TM_TOOLS:-$(dirname "$0")/tools}/lib.sh"
need_tools qemu-img qemu-io cmp
need_tidemark
mk_scratch
cd "$SCRATCH" || exit 1

# ---- 1. tidemark-made files ------------------------------------------------

# ours <name> <fixed|dynamic> <block size> <virtual size in bytes>
ours() {
    local name=$1 kind=$2 bsz=$3 vs=$4
    local f=$name.vhdx raw=$name.shadow bs b info
    bs=$(size_of "$bsz")
    echo "# $name: $kind, block $bsz, size $vs"
    if ! tm vhd new "$f" --size "$vs" "--$kind" --block-size "$bsz" \
        --logical-sector 512; then
        not_ok "$name: vhd new"
        return
    fi
    ok "$name: vhd new"
    truncate -s "$vs" "$raw"
    # Writes: first sector, across the block 0/1 boundary, unaligned,
    # inside a block, rewrite, zeros into a fresh block, the last bytes
    # of the disk, and a random stdin write across a block boundary.
    local w=(
        "0 0x01 512"
        "$((bs - 4096)) 0x02 8192"
        "12345 0x03 1000"
        "$((bs + bs / 2)) 0x04 65536"
        "0 0x05 256"
        "$((vs - 512)) 0x06 512"
        "$((vs - 70000)) 0x07 4097"
    )
    if [ "$vs" -gt $((3 * bs)) ]; then
        w+=("$((2 * bs)) 0x00 4096" "$((3 * bs - 1)) 0x08 2")
    fi
    local good=0 x keep=()
    for x in "${w[@]}"; do
        set -- $x
        [ $(($1 + $3)) -le "$vs" ] || continue
        keep+=("$x")
        tm_write "$f" "$raw" "$1" "$2" "$3" || good=1
    done
    w=("${keep[@]}")
    head -c 100000 /dev/urandom >"$name.rnd"
    if tm vhd write "$f" --offset $((bs - 50000)) <"$name.rnd"; then
        shadow_write_file "$raw" $((bs - 50000)) "$name.rnd"
    else
        good=1
    fi
    t "$name: all writes succeed" test "$good" = 0
    t "$name: qemu-img check is clean" qemu_check_clean "$f"
    t "$name: canonical layout (vhdxdump --check-canonical)" canonical "$f"
    local qi
    qi=$(qemu-img info -f vhdx --output=json "$f" | json_get - virtual-size)
    eq "$name: qemu-img sees the virtual size" "$qi" "$vs"
    qi=$(qemu-img info -f vhdx --output=json "$f" | json_get - cluster-size)
    eq "$name: qemu-img sees the block size" "$qi" "$bs"
    if qemu_raw "$f" "$name.q.raw"; then
        t "$name: qemu-img convert equals the shadow" \
            cmp "$name.q.raw" "$raw"
    else
        not_ok "$name: qemu-img convert"
    fi
    rm -f "$name.q.raw"
    t "$name: vhd cat equals the shadow" cat_equals "$f" "$raw"
    t "$name: vhd read across the block boundary" \
        read_equals "$f" "$raw" $((bs - 4096 - 10)) 8212
    t "$name: vhd read of the last sector" read_equals "$f" "$raw" \
        $((vs - 512)) 512
    # Structure: dynamic files allocate only written blocks; fixed all.
    b=$(dump_get "$f" bat.census.payload.FULLY_PRESENT)
    if [ "$kind" = fixed ]; then
        eq "$name: every block FULLY_PRESENT" "$b" \
            "$(( (vs + bs - 1) / bs ))"
    else
        local want
        want=$($PY - "$bs" "$vs" "${w[@]}" "$((bs - 50000)) 0x09 100000" <<'EOF'
import sys
bs, vs = int(sys.argv[1]), int(sys.argv[2])
blocks = set()
for w in sys.argv[3:]:
    off, byte, ln = w.split()
    off, ln = int(off), int(ln)
    if int(byte, 0) == 0:
        continue          # a zero write need not allocate
    blocks.update(range(off // bs, (off + ln - 1) // bs + 1))
print(len(blocks))
EOF
)
        local got
        got=$(dump_get "$f" bat.census.payload.FULLY_PRESENT)
        # A zero write may or may not allocate its block.
        if [ "$got" = "$want" ] || [ "$got" = "$((want + 1))" ]; then
            ok "$name: dynamic file allocates only written blocks ($got)"
        else
            not_ok "$name: dynamic file allocates only written blocks"
            diag "FULLY_PRESENT $got, written blocks $want"
        fi
    fi
    info=$(tm vhd info --json "$f")
    eq "$name: vhd info virtual_size" "$(echo "$info" | json_get - virtual_size)" "$vs"
    eq "$name: vhd info block_size" "$(echo "$info" | json_get - block_size)" "$bs"
    eq "$name: vhd info type" "$(echo "$info" | json_get - type)" "$kind"
    eq "$name: vhd info's census agrees with the dumper's" \
        "$(echo "$info" | json_get - blocks_fully_present)" "$b"
    t "$name: vhd check is clean" tm vhd check "$f"
    rm -f "$name.rnd"
}

ours dyn1m dynamic 1M $((37 * 1024 * 1024 + 512))
ours dyn8m dynamic 8M $((100 * 1024 * 1024 + 3584))
ours dyn256m dynamic 256M $((700 * 1024 * 1024 + 1536))
ours fix1m fixed 1M $((40 * 1024 * 1024 + 1536))
ours fix8m fixed 8M $((50 * 1024 * 1024 + 1024))
ours fix32m fixed 32M $((90 * 1024 * 1024 + 512))
ours fix256m fixed 256M $((300 * 1024 * 1024 + 2048))
rm -f ./*.vhdx ./*.shadow

# A sparse 6 GiB dynamic disk, 32 MiB blocks (R = 128): writes at 0, across
# the 4 GiB chunk boundary (BAT entries 127/129, SB slot 128 between), 5 GiB.
big() {
    local name=$1 bsz=$2 vs=$3 f=$1.vhdx raw=$1.shadow
    tm vhd new "$f" --size "$vs" --dynamic --block-size "$bsz" ||
        { not_ok "$name: vhd new"; return; }
    truncate -s "$vs" "$raw"
    local good=0
    tm_write "$f" "$raw" 0 0x11 65536 || good=1
    tm_write "$f" "$raw" $((4 * 1024 * 1024 * 1024 - 4096)) 0x22 8192 || good=1
    tm_write "$f" "$raw" $((5 * 1024 * 1024 * 1024)) 0x33 1048576 || good=1
    tm_write "$f" "$raw" $((vs - 1000)) 0x44 1000 || good=1
    t "$name: writes succeed" test "$good" = 0
    t "$name: qemu-img check is clean" qemu_check_clean "$f"
    t "$name: canonical layout" canonical "$f"
    t "$name: vhd cat equals the shadow" cat_equals "$f" "$raw"
    if qemu_raw "$f" "$name.q.raw"; then
        t "$name: qemu-img convert equals the shadow" cmp "$name.q.raw" "$raw"
    else
        not_ok "$name: qemu-img convert"
    fi
    rm -f "$name.q.raw"
    t "$name: vhd read across the chunk boundary" read_equals "$f" "$raw" \
        $((4 * 1024 * 1024 * 1024 - 5000)) 10000
    local r
    r=$(dump_get "$f" bat.chunk_ratio)
    local idx
    idx=$(dump_get "$f" bat.present_blocks | $PY -c 'import json,sys
print(" ".join(str(b["index"]) for b in json.load(sys.stdin)))')
    local bs
    bs=$(size_of "$bsz")
    local b1=$(( (4 * 1024 * 1024 * 1024 - 4096) / bs ))
    eq "$name: blocks across the chunk sit at interleaved BAT indices" \
        "$idx" "0 $((b1)) $((b1 + 2)) $(( (5 << 30) / bs + (5 << 30) / bs / r )) $(( (vs - 1000) / bs + (vs - 1000) / bs / r ))"
    rm -f "$f" "$raw"
}
big big32m 32M $((6 * 1024 * 1024 * 1024 + 7 * 512))

# ---- 2. QEMU-made files ------------------------------------------------------

# theirs <name> <qemu-img -o options> <size> <qemu-io writes...>
theirs() {
    local name=$1 opts=$2 vs f=$1.vhdx
    vs=$(size_of "$3")
    shift 3
    echo "# $name: qemu-img create -o $opts $vs"
    if ! qemu-img create -q -f vhdx -o "$opts" "$f" "$vs"; then
        not_ok "$name: qemu-img create"
        return
    fi
    local args=() w
    for w in "$@"; do args+=(-c "$w"); done
    qemu-io -f vhdx "${args[@]}" "$f" >/dev/null
    qemu_raw "$f" "$name.q.raw" || { not_ok "$name: qemu-img convert"; return; }
    t "$name: vhd cat equals qemu-img convert" cat_equals "$f" "$name.q.raw"
    t "$name: vhd check is clean" tm vhd check "$f"
    local x
    for w in "$@"; do
        set -- $w
        [ "$1" = write ] || continue
        [ "$2" = -z ] && shift
        [ "$2" = -P ] && shift 2
        x=$(size_of "$2")
        local lo=$((x > 100 ? x - 100 : 0))
        local hi=$((x + $(size_of "$3") + 100))
        [ "$hi" -le "$vs" ] || hi=$vs
        t "$name: vhd read around $2" read_equals "$f" "$name.q.raw" \
            "$lo" "$((hi - lo))"
    done
    local sz
    sz=$(tm vhd info --json "$f" | json_get - virtual_size)
    eq "$name: vhd info virtual_size" "$sz" \
        "$(qemu-img info -f vhdx --output=json "$f" | json_get - virtual-size)"
    # tidemark writes into the QEMU file (across a block boundary, into
    # allocated and unallocated blocks); QEMU must still like it.
    local good=0 bs
    bs=$(qemu-img info -f vhdx --output=json "$f" | json_get - cluster-size)
    tm_write "$f" "$name.q.raw" $((bs - 3000)) 0xc1 6000 || good=1
    tm_write "$f" "$name.q.raw" $((vs - bs / 2 - 777)) 0xc2 $((bs / 2)) ||
        good=1
    t "$name: vhd write into the QEMU file succeeds" test "$good" = 0
    t "$name: after vhd write qemu-img check is clean" qemu_check_clean "$f"
    qemu_raw "$f" "$name.q2.raw"
    t "$name: after vhd write qemu-img reads our writes" \
        cmp "$name.q2.raw" "$name.q.raw"
    t "$name: after vhd write vhd cat agrees" cat_equals "$f" "$name.q.raw"
    rm -f "$f" "$name.q.raw" "$name.q2.raw"
}

W=("write -P 0xa1 0 64k" "write -P 0xa2 1020k 8k" "write -P 0xa3 3000000 5000"
   "write -z 9M 1M" "write -P 0xa4 20M 1M")
theirs q_dyn1m_bsz_on subformat=dynamic,block_size=1M 41M "${W[@]}"
theirs q_dyn1m_bsz_off subformat=dynamic,block_size=1M,block_state_zero=off \
    41M "${W[@]}"
theirs q_dyn32m subformat=dynamic,block_size=32M,block_state_zero=off \
    100M "${W[@]}" "write -P 0xa5 33554000 1000"
theirs q_dyn256m subformat=dynamic,block_size=256M 600M "${W[@]}" \
    "write -P 0xa6 268435000 1000"
theirs q_fixed_bsz_on subformat=fixed,block_size=8M 40M "${W[@]}"
theirs q_fixed_bsz_off subformat=fixed,block_state_zero=off,block_size=8M \
    40M "${W[@]}"
theirs q_big6g subformat=dynamic,block_size=1M,block_state_zero=off 6G \
    "write -P 0xb1 0 64k" "write -P 0xb2 4294963200 8k" "write -P 0xb3 5G 1M" \
    "write -P 0xb4 6442450000 944"

# ---- 3. convert round trips ------------------------------------------------

# A sparse raw image with data in a few places (not a block multiple).
vs=$((48 * 1024 * 1024 + 512))
truncate -s $vs src.raw
head -c 300000 /dev/urandom >rnd
shadow_write_file src.raw 0 rnd
shadow_write_file src.raw $((5 * 1024 * 1024 - 1000)) rnd
shadow_write src.raw $((40 * 1024 * 1024)) 0x5a 4096
shadow_write src.raw $((vs - 512)) 0x6b 512
# Blocks with data at 1 MiB: 0, 4, 5, 40, 48.
for mode in dynamic fixed; do
    rm -f rt.vhdx back.raw
    if tm vhd convert "--$mode" --block-size 1M src.raw rt.vhdx; then
        ok "convert raw -> $mode vhdx"
        t "convert $mode: qemu-img check is clean" qemu_check_clean rt.vhdx
        t "convert $mode: canonical layout" canonical rt.vhdx
        qemu_raw rt.vhdx q.raw
        t "convert $mode: qemu-img convert equals the source" cmp q.raw src.raw
        t "convert $mode: vhd cat equals the source" cat_equals rt.vhdx src.raw
        if tm vhd convert rt.vhdx back.raw; then
            t "convert $mode: vhdx -> raw equals the source" cmp back.raw src.raw
            alloc=$(( $(stat -c %b back.raw) * 512 ))
            if [ "$alloc" -le $((8 * 1024 * 1024)) ]; then
                ok "convert $mode: raw output keeps holes ($alloc bytes)"
            else
                not_ok "convert $mode: raw output keeps holes"
                diag "back.raw allocates $alloc bytes for ~1.2 MB of data"
            fi
        else
            not_ok "convert $mode: vhdx -> raw"
        fi
        if [ $mode = dynamic ]; then
            eq "convert dynamic: only blocks with data are allocated" \
                "$(dump_get rt.vhdx bat.census.payload.FULLY_PRESENT)" 5
        else
            eq "convert fixed: every block allocated" \
                "$(dump_get rt.vhdx bat.census.payload.FULLY_PRESENT)" 49
        fi
    else
        not_ok "convert raw -> $mode vhdx"
    fi
done
rm -f rt.vhdx back.raw q.raw

# A QEMU-made file converted to raw by tidemark equals qemu-img's export,
# and converting it to VHDX with tidemark keeps the content.
qemu-img create -q -f vhdx -o subformat=dynamic,block_size=8M q.vhdx 30M
qemu-io -f vhdx -c "write -P 0x77 7M 2M" -c "write -P 0x78 29M 1M" q.vhdx >/dev/null
qemu_raw q.vhdx q.raw
if tm vhd convert q.vhdx t.raw; then
    t "convert qemu vhdx -> raw equals qemu-img convert" cmp t.raw q.raw
else
    not_ok "convert qemu vhdx -> raw"
fi
if tm vhd convert --block-size 8M q.raw t.vhdx; then
    qemu_raw t.vhdx t2.raw
    t "convert raw -> vhdx read back by qemu-img" cmp t2.raw q.raw
else
    not_ok "convert raw -> vhdx (8M blocks)"
fi

finish
