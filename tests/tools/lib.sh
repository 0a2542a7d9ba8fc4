# SPDX-License-Identifier: MIT
# lib.sh - sourced by tests/*_test.sh: TAP output, skips, the scratch
# directory and small helpers shared by the integration tests.
#
# Environment (set by tests/CMakeLists.txt; defaults for running by hand):
#   TIDEMARK  the program under test     TM_TOOLS  this folder
#   TM_SRC    the source tree

set -u
: "${TM_SRC:=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)}"
: "${TM_TOOLS:=$TM_SRC/tests/tools}"
: "${TIDEMARK:=}"
PY=/usr/bin/python3
DUMP="$PY $TM_TOOLS/vhdxdump.py"
TAP_N=0
TAP_FAILED=0
TAP_NAME=$(basename "$0" .sh)

skip_all() {
    echo "1..0 # SKIP $*"
    exit 77
}

need_tools() {
    local t
    for t in "$@"; do
        command -v "$t" >/dev/null 2>&1 || skip_all "$t is not installed"
    done
    [ -x "$PY" ] || skip_all "$PY is not installed"
}

need_tidemark() {
    if [ -z "$TIDEMARK" ] || [ ! -x "$TIDEMARK" ]; then
        echo "Bail out! TIDEMARK='$TIDEMARK' is not an executable program"
        exit 1
    fi
}

ok() {
    TAP_N=$((TAP_N + 1))
    echo "ok $TAP_N - $*"
}

not_ok() {
    TAP_N=$((TAP_N + 1))
    TAP_FAILED=$((TAP_FAILED + 1))
    echo "not ok $TAP_N - $*"
}

diag() {
    echo "# $*" | sed '2,$s/^/# /'
}

# t <description> <command...>: one test point from a command's status.
t() {
    local d=$1
    shift
    if "$@"; then
        ok "$d"
    else
        not_ok "$d"
    fi
}

finish() {
    echo "1..$TAP_N"
    if [ "$TAP_FAILED" -ne 0 ]; then
        echo "# $TAP_NAME: $TAP_FAILED of $TAP_N failed"
        exit 1
    fi
    exit 0
}

# Scratch directory, removed on exit.
mk_scratch() {
    SCRATCH=$(mktemp -d "${TMPDIR:-/tmp}/tmtest.XXXXXX")
    trap 'rm -rf "$SCRATCH"' EXIT
    trap 'exit 1' INT TERM
}

# tm <args...>: runs tidemark with a timeout; output to the caller.
tm() {
    timeout 300 "$TIDEMARK" "$@"
}

# size_of <string with K/M/G/T suffix> -> bytes (plain integers pass).
size_of() {
    local v=$1 m=1
    case $v in
    *[kK]) m=1024 ;;
    *[mM]) m=$((1024 * 1024)) ;;
    *[gG]) m=$((1024 * 1024 * 1024)) ;;
    *[tT]) m=$((1024 * 1024 * 1024 * 1024)) ;;
    esac
    [ "$m" = 1 ] || v=${v%?}
    echo $((v * m))
}

# shadow_write <raw> <offset> <byte> <length>: the same write as
# 'tidemark vhd write --pattern' into a raw shadow file.
shadow_write() {
    local raw=$1 off=$2 byte=$3 len=$4
    head -c "$len" /dev/zero | tr '\000' "\\$(printf '%03o' "$((byte))")" |
        dd of="$raw" bs=1M seek="$off" oflag=seek_bytes iflag=fullblock \
            conv=notrunc status=none
}

# shadow_write_file <raw> <offset> <file>: copies a file into the shadow.
shadow_write_file() {
    dd if="$3" of="$1" bs=1M seek="$2" oflag=seek_bytes conv=notrunc \
        status=none
}

# zero_range <raw> <offset> <length>
zero_range() {
    head -c "$3" /dev/zero | dd of="$1" bs=1M seek="$2" oflag=seek_bytes \
        iflag=fullblock conv=notrunc status=none
}

# tm_write <vhdx> <raw> <offset> <byte> <length>: pattern write into both.
tm_write() {
    local rc
    tm vhd write "$1" --offset "$3" --pattern "$4" --length "$5"
    rc=$?
    shadow_write "$2" "$3" "$4" "$5"
    if [ "$rc" -ne 0 ]; then
        diag "tidemark vhd write $1 --offset $3 --pattern $4 --length $5: rc $rc"
        return 1
    fi
}

# cat_equals <vhdx> <raw>: 'tidemark vhd cat' succeeds and equals raw.
cat_equals() {
    local out rc
    out=$(tm vhd cat "$1" | cmp - "$2" 2>&1; echo "${PIPESTATUS[0]} ${PIPESTATUS[1]}")
    rc=${out##*$'\n'}
    if [ "$rc" != "0 0" ]; then
        diag "vhd cat $1 vs $2: (cat rc, cmp rc) = ($rc): ${out%$'\n'*}"
        return 1
    fi
}

# read_equals <vhdx> <raw> <offset> <length>: 'vhd read' equals the raw.
read_equals() {
    local a b
    a=$(tm vhd read "$1" --offset "$3" --length "$4" | sha256sum)
    b=$(dd if="$2" bs=1M skip="$3" count="$4" iflag=skip_bytes,count_bytes \
        status=none | sha256sum)
    if [ "$a" != "$b" ] || [ "$(tm vhd read "$1" --offset "$3" --length "$4" |
                               wc -c)" != "$4" ]; then
        diag "vhd read $1 --offset $3 --length $4 differs from $2"
        return 1
    fi
}

# qemu_raw <vhdx> <raw>: qemu-img's export.
qemu_raw() {
    qemu-img convert -f vhdx -O raw "$1" "$2"
}

# qemu_check_clean <vhdx>: qemu-img check exits 0.
qemu_check_clean() {
    local out
    if ! out=$(qemu-img check -f vhdx "$1" 2>&1); then
        diag "qemu-img check $1: $out"
        return 1
    fi
}

# canonical <vhdx>: the independent dumper's writer-rule check.
canonical() {
    local out
    if ! out=$($DUMP --check-canonical "$1" 2>&1); then
        diag "$out"
        return 1
    fi
}

# dump_get <vhdx> <path...>: fields of the dumper's JSON, one a line.
dump_get() {
    local f=$1 a=()
    shift
    local p
    for p in "$@"; do a+=(--get "$p"); done
    $DUMP "${a[@]}" "$f"
}

# cur_get <vhdx> <field>: a field of the current header, per the dumper.
cur_get() {
    local c
    c=$($DUMP --get current_header "$1")
    [ "$c" = null ] && { echo null; return; }
    $DUMP --get "headers.$((c - 1)).$2" "$1"
}

# json_get <json file or -> <key>: a top-level field of a JSON object.
json_get() {
    $PY -c 'import json,sys
d=json.load(open(sys.argv[1]) if sys.argv[1] != "-" else sys.stdin)
v=d.get(sys.argv[2])
print(json.dumps(v) if isinstance(v,(dict,list,bool)) or v is None else v)' "$1" "$2"
}

# eq <description> <actual> <expected>
eq() {
    if [ "$2" = "$3" ]; then
        ok "$1"
    else
        not_ok "$1"
        diag "got '$2', want '$3'"
    fi
}
