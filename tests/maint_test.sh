#!/bin/bash
# SPDX-License-Identifier: MIT
# maint_test.sh - 'vhd resize' and 'vhd optimize' against independent
# readers.
#
# 512-byte-sector dynamic and fixed files (tidemark's and QEMU's): after
# every grow, shrink and optimize, 'qemu-img check' is clean and
# 'qemu-img compare' finds the file equal to a raw shadow that got the
# same writes and size changes; tidemark's files also keep the canonical
# writer rules (vhdxdump --check-canonical).  A refused shrink exits 1
# naming the smallest safe size and changes nothing.  A disk whose BAT
# region is full grows (the BAT moves) and qemu-io reads the data back.
# 4096-byte-sector files (which QEMU cannot open) and a differencing
# child (grown, optimized, shrunk) are checked with '7zz t' and
# '7zz x -tVHDX' against the shadow.
. "${TM_TOOLS:-$(dirname "$0")/tools}/lib.sh"
need_tools qemu-img qemu-io cmp truncate
need_tidemark
if ! "$TIDEMARK" vhd resize --help >/dev/null 2>&1 ||
   ! "$TIDEMARK" vhd optimize --help >/dev/null 2>&1; then
    skip_all "this tidemark has no 'vhd resize' / 'vhd optimize' verbs"
fi
have_7zz=0
command -v 7zz >/dev/null 2>&1 && have_7zz=1
mk_scratch
cd "$SCRATCH" || exit 1

MiB=$((1024 * 1024))
GiB=$((1024 * MiB))

# qemu_same <vhdx> <raw>: qemu-img sees the shadow's size and bytes.
# (Not 'compare -s': that also compares allocation, which differs.)
qemu_same() {
    local out vs
    vs=$(qemu-img info -f vhdx --output=json "$1" | json_get - virtual-size)
    if [ "$vs" != "$(stat -c %s "$2")" ]; then
        diag "qemu-img info $1: virtual size $vs, shadow $(stat -c %s "$2")"
        return 1
    fi
    if ! out=$(qemu-img compare -f vhdx -F raw "$1" "$2" 2>&1); then
        diag "qemu-img compare $1 $2: $out"
        return 1
    fi
}

# z7_same <vhdx> <raw>: 7-Zip tests the file clean and extracts the
# shadow's bytes.
z7_same() {
    local out name
    name=$(basename "$1")
    name=${name%.*}
    out=$(7zz t -tVHDX "$1" 2>&1)
    if ! echo "$out" | grep -q '^Everything is Ok' ||
       echo "$out" | grep -qiE 'warning|error|data after the end'; then
        diag "7zz t $1: $(echo "$out" | grep -iE 'error|warn|data' | head -3)"
        return 1
    fi
    rm -rf x7
    if ! 7zz x -tVHDX -y -ox7 "$1" >/dev/null 2>&1 ||
       ! cmp -s "x7/$name.img" "$2"; then
        diag "7zz x $1 differs from $2"
        rm -rf x7
        return 1
    fi
    rm -rf x7
}

# resize_ok <vhdx> <raw> <size>: resizes both; the shadow is truncated or
# extended with zeros, as the disk must read.
resize_ok() {
    local out rc
    out=$(tm vhd resize "$1" --size "$3" 2>&1)
    rc=$?
    if [ "$rc" -ne 0 ]; then
        diag "vhd resize $1 --size $3: rc $rc: $out"
        return 1
    fi
    truncate -s "$3" "$2"
    echo "$out" | grep -q "^resized $1: [0-9]* -> $3 bytes" ||
        { diag "unexpected output: $out"; return 1; }
}

# all_good <name> <vhdx> <raw> <what> <512|4096> [tidemark-made]
all_good() {
    local name=$1 f=$2 raw=$3 what=$4 ls=$5 ours=${6:-1}
    local vs
    vs=$(tm vhd info --json "$f" | json_get - virtual_size)
    eq "$name: $what: virtual size" "$vs" "$(stat -c %s "$raw")"
    t "$name: $what: vhd check is clean" tm vhd check "$f" >/dev/null
    if [ "$ours" = 1 ]; then
        t "$name: $what: canonical layout" canonical "$f"
    fi
    if [ "$ls" = 512 ]; then
        t "$name: $what: qemu-img check is clean" qemu_check_clean "$f"
        t "$name: $what: qemu-img compare equals the shadow" \
            qemu_same "$f" "$raw"
    elif [ "$have_7zz" = 1 ]; then
        t "$name: $what: 7zz reads the shadow's bytes" z7_same "$f" "$raw"
    fi
    t "$name: $what: vhd cat equals the shadow" cat_equals "$f" "$raw"
}

# canonical_diff <avhdx>: the dumper's writer rules for a child.
canonical_diff() {
    local out
    if ! out=$($DUMP --check-canonical --differencing "$1" 2>&1); then
        diag "$out"
        return 1
    fi
}

# optimize_ok <vhdx>: runs optimize; prints "<zeroed> <moved> <before>
# <after>" from its JSON.
optimize_ok() {
    local j
    j=$(tm vhd optimize --json "$1") || return 1
    echo "$(echo "$j" | json_get - blocks_zeroed)" \
         "$(echo "$j" | json_get - blocks_moved)" \
         "$(echo "$j" | json_get - size_before)" \
         "$(echo "$j" | json_get - size_after)"
}

# ---- dynamic and fixed, 512-byte and 4096-byte sectors ----------------------

# case_rs <name> <fixed|dynamic> <logical> <block size> <virtual size>
case_rs() {
    local name=$1 kind=$2 ls=$3 bsz=$4 vs=$5 f=$1.vhdx raw=$1.raw
    local bs out rc r fs
    bs=$(size_of "$bsz")
    echo "# $name: $kind, logical $ls, block $bsz, size $vs"
    if ! tm vhd new "$f" --size "$vs" "--$kind" --block-size "$bsz" \
        --logical-sector "$ls"; then
        not_ok "$name: vhd new"
        return
    fi
    truncate -s "$vs" "$raw"
    local good=0
    tm_write "$f" "$raw" 0 0x41 4096 || good=1
    tm_write "$f" "$raw" $((bs - 1000)) 0x42 5000 || good=1
    tm_write "$f" "$raw" $((vs - 2 * ls)) 0x43 $((2 * ls)) || good=1
    tm_write "$f" "$raw" $((3 * bs)) 0x44 $((2 * bs)) || good=1
    t "$name: writes succeed" test "$good" = 0

    # Grow: old data stays, new space reads zeros, the new end takes data.
    local v2=$((vs + 3 * bs + 4 * ls))
    t "$name: grow to $v2" resize_ok "$f" "$raw" "$v2"
    all_good "$name" "$f" "$raw" "after growing" "$ls"
    tm_write "$f" "$raw" $((v2 - 3 * ls)) 0x45 $((3 * ls)) || good=1
    tm_write "$f" "$raw" $((vs + 100)) 0x46 300 || good=1
    t "$name: writes into the new space" test "$good" = 0
    all_good "$name" "$f" "$raw" "after writing the new space" "$ls"

    # A shrink below the data is refused, naming the smallest safe size,
    # and changes nothing.
    fs=$(sha256sum <"$f")
    out=$(tm vhd resize "$f" --size $((vs / 2)) 2>&1)
    rc=$?
    eq "$name: shrink below the data exits 1" "$rc" 1
    if echo "$out" | grep -q "smallest safe size is $v2 bytes"; then
        ok "$name: the refusal names the smallest safe size"
    else
        not_ok "$name: the refusal names the smallest safe size"
        diag "$out"
    fi
    eq "$name: a refused shrink leaves the file alone" \
        "$(sha256sum <"$f")" "$fs"
    out=$(tm vhd resize "$f" --size $((vs + 1)) 2>&1)
    eq "$name: a size that is not a sector multiple is a usage error" \
        "$?" 2

    # Zero the tail, then shrink: blocks past the end are let go.
    tm_write "$f" "$raw" $((vs - 2 * ls)) 0 $((v2 - vs + 2 * ls)) || good=1
    r=$((5 * bs + 6 * ls))
    t "$name: shrink to $r" resize_ok "$f" "$raw" "$r"
    all_good "$name" "$f" "$raw" "after shrinking" "$ls"
    t "$name: grow again to $vs" resize_ok "$f" "$raw" "$vs"
    all_good "$name" "$f" "$raw" "after growing again" "$ls"

    # Optimize: zero blocks are released, blocks move down, the file ends
    # sooner; a fixed disk is left alone.
    tm_write "$f" "$raw" $((5 * bs)) 0x47 $((2 * bs)) || good=1
    tm_write "$f" "$raw" $((8 * bs)) 0x48 $((bs / 2)) || good=1
    tm_write "$f" "$raw" 0 0 $((bs * 2)) || good=1
    tm_write "$f" "$raw" $((5 * bs)) 0 "$bs" || good=1
    fs=$(stat -c %s "$f")
    r=$(optimize_ok "$f")
    if [ -z "$r" ]; then
        not_ok "$name: vhd optimize"
    else
        ok "$name: vhd optimize ($r)"
        set -- $r
        if [ "$kind" = fixed ]; then
            eq "$name: optimize leaves a fixed disk's size" "$4" "$fs"
            eq "$name: optimize releases nothing in a fixed disk" "$1 $2" \
                "0 0"
        else
            eq "$name: optimize releases the zero blocks" "$1" 3
            if [ "$2" -ge 1 ] && [ "$4" -lt "$3" ] &&
               [ "$(stat -c %s "$f")" = "$4" ]; then
                ok "$name: optimize moves blocks and the file shrinks"
            else
                not_ok "$name: optimize moves blocks and the file shrinks"
                diag "result $r, file $(stat -c %s "$f")"
            fi
        fi
    fi
    all_good "$name" "$f" "$raw" "after optimize" "$ls"
    rm -f "$f" "$raw"
}

# Sizes are even multiples of the logical sector (7-Zip, see
# interop_7zip_test.sh), and not block multiples.
case_rs d512 dynamic 512 1M $((24 * MiB + 1024))
case_rs d512b dynamic 512 4M $((50 * MiB + 3072))
case_rs f512 fixed 512 2M $((20 * MiB + 1024))
if [ "$have_7zz" = 1 ]; then
    case_rs d4k dynamic 4096 1M $((24 * MiB + 8192))
    case_rs f4k fixed 4096 2M $((20 * MiB + 8192))
else
    echo "# 7zz is not installed: no 4096-byte-sector cases"
fi

# ---- a full BAT region ------------------------------------------------------

# 1 MiB blocks, 512-byte sectors: 124 GiB fills a 1 MiB BAT region; one
# more MiB moves the BAT to the end of the file.
echo "# full: dynamic, 124 GiB, the BAT must move"
f=full.vhdx
if tm vhd new "$f" --size $((124 * GiB)) --block-size 1M \
    --logical-sector 512; then
    tm vhd write "$f" --offset 0 --pattern 0x51 --length 4096 &&
    tm vhd write "$f" --offset $((100 * GiB + 512)) --pattern 0x52 \
        --length 70000 &&
    tm vhd write "$f" --offset $((124 * GiB - 1024)) --pattern 0x53 \
        --length 1024
    t "full: writes succeed" test $? = 0
    bat0=$(dump_get "$f" region_tables.0.entries.0.offset)
    t "full: grow by 3 MiB" \
        tm vhd resize "$f" --size $((124 * GiB + 3 * MiB)) >/dev/null
    out=$(qemu-io -r -f vhdx -c "read -P 0x51 0 4096" \
        -c "read -P 0x52 $((100 * GiB + 512)) 70000" \
        -c "read -P 0x53 $((124 * GiB - 1024)) 1024" \
        -c "read -P 0 $((124 * GiB)) $((3 * MiB))" "$f" 2>&1)
    if echo "$out" | grep -qE 'Pattern verification failed|error|fail'; then
        not_ok "full: qemu-io reads the data and zeros after the move"
        diag "$out"
    else
        ok "full: qemu-io reads the data and zeros after the move"
    fi
    t "full: qemu-img check is clean" qemu_check_clean "$f"
    t "full: canonical layout" canonical "$f"
    if [ "$(dump_get "$f" bat.length)" = $((2 * MiB)) ] &&
       [ "$(dump_get "$f" bat.offset)" != "$bat0" ]; then
        ok "full: the BAT region moved and grew to 2 MiB"
    else
        not_ok "full: the BAT region moved and grew to 2 MiB"
    fi
    qi=$(qemu-img info -f vhdx --output=json "$f" | json_get - virtual-size)
    eq "full: qemu-img sees the new size" "$qi" $((124 * GiB + 3 * MiB))
    # The old region is a hole now: optimize moves the last block into it.
    tm vhd write "$f" --offset $((124 * GiB + MiB)) --pattern 0x54 \
        --length 512
    r=$(optimize_ok "$f")
    set -- $r
    eq "full: optimize moves one block into the old BAT region" "$2" 1
    out=$(qemu-io -r -f vhdx -c "read -P 0x54 $((124 * GiB + MiB)) 512" \
        -c "read -P 0x52 $((100 * GiB + 512)) 70000" "$f" 2>&1)
    if echo "$out" | grep -qE 'Pattern verification failed|error|fail'; then
        not_ok "full: qemu-io reads the moved block"
        diag "$out"
    else
        ok "full: qemu-io reads the moved block"
    fi
    t "full: qemu-img check is clean after optimize" qemu_check_clean "$f"
    t "full: canonical layout after optimize" canonical "$f"
else
    not_ok "full: vhd new"
fi
rm -f "$f"

# ---- a file QEMU made -------------------------------------------------------

# QEMU's layout leaves a gap before the first block (and writes
# Required = 0, so no canonical check here).
echo "# qemu: dynamic, QEMU-made, block_state_zero=off"
f=q.vhdx
raw=q.raw
vs=$((40 * MiB))
if qemu-img create -q -f vhdx \
    -o subformat=dynamic,block_size=1M,block_state_zero=off "$f" "$vs"; then
    truncate -s "$vs" "$raw"
    for x in "0 0x61 8192" "$((5 * MiB)) 0x62 $((3 * MiB))" \
             "$((20 * MiB + 7)) 0x63 5000" "$((39 * MiB)) 0x64 $MiB"; do
        set -- $x
        qemu-io -f vhdx -c "write -P $2 $1 $3" "$f" >/dev/null
        shadow_write "$raw" "$1" "$2" "$3"
    done
    qemu-io -f vhdx -c "write -z $((6 * MiB)) $MiB" "$f" >/dev/null
    zero_range "$raw" $((6 * MiB)) "$MiB"
    t "qemu: grow" resize_ok "$f" "$raw" $((64 * MiB))
    all_good qemu "$f" "$raw" "after growing" 512 0
    tm_write "$f" "$raw" $((39 * MiB)) 0 "$MiB"
    t "qemu: shrink" resize_ok "$f" "$raw" $((30 * MiB))
    all_good qemu "$f" "$raw" "after shrinking" 512 0
    r=$(optimize_ok "$f")
    t "qemu: vhd optimize ($r)" test -n "$r"
    all_good qemu "$f" "$raw" "after optimize" 512 0
    # QEMU still writes it.
    qemu-io -f vhdx -c "write -P 0x65 $((29 * MiB)) $MiB" "$f" >/dev/null
    shadow_write "$raw" $((29 * MiB)) 0x65 "$MiB"
    t "qemu: QEMU writes the optimized file" qemu_same "$f" "$raw"
else
    not_ok "qemu: qemu-img create"
fi
rm -f "$f" "$raw"

# ---- a differencing disk (7-Zip is the oracle) ------------------------------

if [ "$have_7zz" = 1 ]; then
    echo "# diff: a child of a dynamic base, 2 MiB blocks"
    mkdir -p chain && cd chain || exit 1
    vs=$((20 * MiB + 1024))
    raw=child.raw
    if tm vhd new base.vhdx --size "$vs" --block-size 1M &&
       tm vhd write base.vhdx --offset 0 --pattern 0x11 --length "$vs" &&
       tm vhd new child.avhdx --parent base.vhdx; then
        shadow_write "$raw" 0 0x11 "$vs"
        good=0
        tm_write child.avhdx "$raw" $((3 * MiB + 100)) 0x22 5000 || good=1
        tm_write child.avhdx "$raw" $((4 * MiB)) 0x23 $((2 * MiB)) || good=1
        tm_write child.avhdx "$raw" $((vs - 1024)) 0x24 512 || good=1
        t "diff: writes succeed" test "$good" = 0
        t "diff: grow the child" resize_ok child.avhdx "$raw" $((40 * MiB))
        t "diff: 7zz reads the grown child (zeros past the parent)" \
            z7_same child.avhdx "$raw"
        t "diff: vhd check is clean" tm vhd check child.avhdx >/dev/null
        t "diff: differencing writer rules" canonical_diff child.avhdx
        out=$(tm vhd resize child.avhdx --size $((10 * MiB)) 2>&1)
        rc=$?
        if [ "$rc" = 1 ] && echo "$out" | grep -q "parent's size"; then
            ok "diff: a shrink below the parent is refused"
        else
            not_ok "diff: a shrink below the parent is refused"
            diag "rc $rc: $out"
        fi
        tm_write child.avhdx "$raw" $((4 * MiB)) 0 $((2 * MiB)) || good=1
        r=$(optimize_ok child.avhdx)
        set -- $r
        eq "diff: optimize turns the zero block into ZERO" "${1:-}" 1
        t "diff: 7zz reads the optimized child" z7_same child.avhdx "$raw"
        t "diff: shrink the child" resize_ok child.avhdx "$raw" $((30 * MiB))
        t "diff: 7zz reads the shrunk child" z7_same child.avhdx "$raw"
        # A moved parent: optimize does not need it; resize is told.
        mkdir -p moved && mv base.vhdx moved/
        t "diff: optimize works without the parent" \
            tm vhd optimize child.avhdx >/dev/null
        tm vhd resize child.avhdx --size $((24 * MiB)) >/dev/null 2>&1
        eq "diff: resize cannot find a moved parent" "$?" 1
        t "diff: resize --parent names the moved parent" \
            tm vhd resize child.avhdx --size $((24 * MiB)) \
            --parent moved/base.vhdx >/dev/null
        truncate -s $((24 * MiB)) "$raw"
        mv moved/base.vhdx .
        t "diff: 7zz reads the child shrunk with --parent" \
            z7_same child.avhdx "$raw"
        t "diff: differencing writer rules after all that" \
            canonical_diff child.avhdx
    else
        not_ok "diff: make the chain"
    fi
    cd .. && rm -rf chain
fi

finish
