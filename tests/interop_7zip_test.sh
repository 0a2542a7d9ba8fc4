#!/bin/bash
# SPDX-License-Identifier: MIT
# interop_7zip_test.sh - 7-Zip and libvhdi read tidemark's VHDX files.
#
# tidemark files with 512- and 4096-byte logical sectors, fixed and dynamic,
# written with 'vhd write' (a raw shadow gets the same writes):
#   7zz t -tVHDX      says "Everything is Ok", no warning or error
#   7zz x -tVHDX      extracts bytes equal to the shadow and to 'vhd cat'
#   7zz l -slt        reports the method, block and sector sizes we asked
#   vhdiinfo          media size, bytes per sector, disk type, identifier
#                     (= the current DataWriteGuid) agree with 'vhd info'
#   pyvhdi            reads the same bytes (libvhdi exclusions, reference
#                     12.2: no fixed file bigger than one chunk here)
. "${TM_TOOLS:-$(dirname "$0")/tools}/lib.sh"
need_tools 7zz vhdiinfo cmp
need_tidemark
mk_scratch
cd "$SCRATCH" || exit 1

have_pyvhdi=0
$PY -c 'import pyvhdi' 2>/dev/null && have_pyvhdi=1

# pyvhdi_equals <vhdx> <raw>: libvhdi's view of every byte equals raw.
pyvhdi_equals() {
    $PY - "$1" "$2" <<'EOF'
import sys, pyvhdi
f = pyvhdi.file()
f.open(sys.argv[1])
size = f.get_media_size()
with open(sys.argv[2], "rb") as r:
    off = 0
    while off < size:
        n = min(4 << 20, size - off)
        a = f.read_buffer_at_offset(n, off)
        b = r.read(n)
        if a != b:
            i = next(i for i in range(n) if a[i:i + 1] != b[i:i + 1])
            print("# pyvhdi differs at byte %d" % (off + i))
            sys.exit(1)
        off += n
    if r.read(1):
        print("# raw longer than media size %d" % size)
        sys.exit(1)
f.close()
EOF
}

# case7 <name> <fixed|dynamic> <logical> <block size> <virtual size>
case7() {
    local name=$1 kind=$2 ls=$3 bsz=$4 vs=$5 f=$1.vhdx raw=$1.shadow
    local bs
    bs=$(size_of "$bsz")
    echo "# $name: $kind, logical $ls, block $bsz, size $vs"
    if ! tm vhd new "$f" --size "$vs" "--$kind" --block-size "$bsz" \
        --logical-sector "$ls"; then
        not_ok "$name: vhd new"
        return
    fi
    truncate -s "$vs" "$raw"
    local good=0
    tm_write "$f" "$raw" 0 0x31 "$ls" || good=1
    tm_write "$f" "$raw" $((bs - 3 * ls)) 0x32 $((6 * ls)) || good=1
    tm_write "$f" "$raw" 7777 0x33 12345 || good=1
    tm_write "$f" "$raw" $((vs - ls)) 0x34 "$ls" || good=1
    tm_write "$f" "$raw" $((vs / 2)) 0x35 $((bs + 4096)) || good=1
    head -c 70000 /dev/urandom >rnd
    if tm vhd write "$f" --offset $((3 * bs - 1000)) <rnd; then
        shadow_write_file "$raw" $((3 * bs - 1000)) rnd
    else
        good=1
    fi
    t "$name: writes succeed" test "$good" = 0

    local out
    out=$(7zz t -tVHDX "$f" 2>&1)
    if echo "$out" | grep -q '^Everything is Ok' &&
       ! echo "$out" | grep -qiE 'warning|error|data after the end'; then
        ok "$name: 7zz t says Everything is Ok"
    else
        not_ok "$name: 7zz t says Everything is Ok"
        diag "$(echo "$out" | grep -iE 'error|warn|ok|data' | head -5)"
    fi
    rm -rf x
    if 7zz x -tVHDX -y -ox "$f" >/dev/null 2>&1 && [ -f "x/$name.img" ]; then
        t "$name: 7zz x equals the shadow" cmp "x/$name.img" "$raw"
    else
        not_ok "$name: 7zz x extracts $name.img"
        ls -l x 2>&1 | sed 's/^/# /'
    fi
    rm -rf x
    t "$name: vhd cat equals the shadow" cat_equals "$f" "$raw"

    out=$(7zz l -slt -tVHDX "$f" 2>&1)
    eq "$name: 7zz method" "$(echo "$out" | sed -n 's/^Method = //p')" "$kind"
    eq "$name: 7zz cluster size" \
        "$(echo "$out" | sed -n 's/^Cluster Size = //p')" "$bs"
    eq "$name: 7zz sector size" \
        "$(echo "$out" | sed -n 's/^Sector Size = //p')" "$ls"
    eq "$name: 7zz virtual size" \
        "$(echo "$out" | sed -n 's/^VirtualDiskSize: //p')" "$vs"

    local info dwg
    info=$(tm vhd info --json "$f")
    dwg=$(echo "$info" | json_get - data_write_guid)
    out=$(vhdiinfo "$f" 2>&1)
    eq "$name: vhdiinfo media size" \
        "$(echo "$out" | sed -n 's/.*Media size.*(\([0-9]*\) bytes).*/\1/p')" "$vs"
    eq "$name: vhdiinfo bytes per sector" \
        "$(echo "$out" | sed -n 's/.*Bytes per sector[^0-9]*\([0-9]*\) bytes.*/\1/p')" "$ls"
    local dt=Fixed
    [ "$kind" = dynamic ] && dt=Dynamic
    eq "$name: vhdiinfo disk type" \
        "$(echo "$out" | sed -n 's/.*Disk type[^A-Za-z]*\([A-Za-z]*\).*/\1/p')" "$dt"
    eq "$name: vhdiinfo identifier is the DataWriteGuid" \
        "$(echo "$out" | sed -n 's/.*Identifier[^0-9a-f]*\([0-9a-f-]*\).*/\1/p')" "$dwg"
    if [ "$have_pyvhdi" = 1 ]; then
        t "$name: pyvhdi reads the shadow's bytes" pyvhdi_equals "$f" "$raw"
    fi
    t "$name: canonical layout" canonical "$f"
    rm -f "$f" "$raw"
}

# Virtual sizes are not block multiples, but they are *even* multiples of
# the logical sector size: 7-Zip 26.02 refuses any VHDX whose size is an odd
# multiple of it (VhdxHandler.cpp tests 'VirtualDiskSize & (1 << log2(sector))'
# where a mask of the low bits was meant), QEMU-made files included.
case7 d512 dynamic 512 1M $((30 * 1024 * 1024 + 1024))
case7 d512b dynamic 512 32M $((200 * 1024 * 1024 + 3072))
case7 f512 fixed 512 2M $((20 * 1024 * 1024 + 1024))
case7 f512b fixed 512 8M $((40 * 1024 * 1024 + 3072))
case7 d4k dynamic 4096 1M $((30 * 1024 * 1024 + 8192))
case7 d4kb dynamic 4096 16M $((100 * 1024 * 1024 + 8192))
case7 f4k fixed 4096 2M $((20 * 1024 * 1024 + 8192))
case7 f4kb fixed 4096 32M $((110 * 1024 * 1024 + 24576))

finish
