#!/bin/bash
# SPDX-License-Identifier: MIT
# chain_corrupt_test.sh - broken chains get clear errors, never a crash or a
# hang; tolerable oddities open.
#
# Each case is a small chain (a base with data, a child, sometimes a
# grandchild) damaged with 'vhd write' into a parent, file moves, or
# tools/chainpatch.py, which rewrites the parent locator item and flags in
# place (metadata items carry no checksum; nothing else is touched):
#   - the parent written after the child was made (its DataWriteGuid
#     renewed): reads fail naming both files;
#   - the parent missing: reads fail naming the path(s) looked for; the
#     same two a level further down, through a grandchild;
#   - a loop: A's parent is B and B's parent is A (locator patched), a file
#     its own parent, and 'vhd set-parent --force' asked to make a loop;
#   - a parent with another logical sector size (either way round);
#   - a parent larger than the child (and 'vhd new --parent --size' smaller
#     than the parent);
#   - locators: no path key, no parent_linkage, parent_linkage not a GUID,
#     another locator type, an empty item, random bytes, a KeyValueCount of
#     65535, a value offset past the item, HasParent without a locator;
#   - 'vhd set-parent' to a file that is not the parent (refused without
#     --force, accepted with it), 'vhd new --parent' of a missing parent.
# For each, 'vhd info', 'vhd check' and 'vhd cat' run under 'timeout 20':
# no timeout, no signal, no usage error (exit 2); reads must fail with exit
# 1 and one stderr line "tidemark: vhd cat: ..." naming the problem (files'
# basenames, or keywords, case-insensitive); the files are left unchanged.
# 'vhd info' may fail the same way, or succeed and show the damage in its
# JSON chain: link "changed" / "missing", or a link that is not "ok" with
# an error naming the problem; a chain is never listed deeper than it is
# (a loop must not be walked round and round).  'vhd check' exits 0 or 1.
#
# Accepted (reads equal the shadow): parent_linkage wrong but
# parent_linkage2 right, GUIDs in upper case, relative_path wrong or absent
# with absolute_win32_path right ("Z:\..." and "\\?\Z:\..." forms), and the
# immediate parent given with --parent.
. "${TM_TOOLS:-$(dirname "$0")/tools}/lib.sh"
need_tools cmp sha256sum timeout
need_tidemark
mk_scratch
cd "$SCRATCH" || exit 1

CP="$PY $TM_TOOLS/chainpatch.py"
MiB=$((1024 * 1024))

sha() { sha256sum "$@" | cut -d' ' -f1 | tr '\n' ' '; }

# run <out> <err> <args...>: tidemark under a 20 s timeout; prints rc.
run() {
    local out=$1 err=$2
    shift 2
    timeout 20 "$TIDEMARK" "$@" >"$out" 2>"$err"
    echo $?
}

# has_any <file> <kw|kw|...>: one of the keywords, case-insensitive.
has_any() {
    local k ks
    IFS='|' read -r -a ks <<<"$2"
    for k in "${ks[@]}"; do
        grep -qiF -- "$k" "$1" && return 0
    done
    return 1
}

# has_all <file> <kw|kw|...>: every keyword.
has_all() {
    local k ks
    IFS='|' read -r -a ks <<<"$2"
    for k in "${ks[@]}"; do
        grep -qiF -- "$k" "$1" || return 1
    done
}

# sane <label> <rc> <err>: no timeout, signal or usage error.
sane() {
    if [ "$2" -ge 124 ] || [ "$2" = 2 ]; then
        not_ok "$1: rc $2 (timeout, signal or usage error)"
        diag "$(head -3 "$3")"
        return 1
    fi
}

# expect_fail <label> <verb> <all-keywords> <any-keywords> <args...>: exit 1,
# one stderr line "tidemark: vhd <verb>: ..." holding every keyword of the
# first list and one of the second ("-" = none).
expect_fail() {
    local label=$1 verb=$2 all=$3 any=$4 rc
    shift 4
    rc=$(run f.out f.err vhd "$verb" "$@")
    sane "$label" "$rc" f.err || return
    if [ "$rc" != 1 ]; then
        not_ok "$label: vhd $verb fails with exit 1"
        diag "rc $rc: $(head -2 f.err)"
    elif [ "$(wc -l <f.err)" != 1 ] || ! grep -q "^tidemark: vhd $verb: " f.err
    then
        not_ok "$label: vhd $verb fails with one 'tidemark: vhd $verb:' line"
        diag "$(head -3 f.err)"
    elif { [ "$all" != - ] && ! has_all f.err "$all"; } ||
         { [ "$any" != - ] && ! has_any f.err "$any"; }; then
        not_ok "$label: vhd $verb names the problem ($all; $any)"
        diag "$(cat f.err)"
    else
        ok "$label: vhd $verb fails: $(cut -c1-150 f.err)"
    fi
}

# info_shows <json file> <spec>: the JSON chain of 'vhd info' shows the
# damage: spec "link=V" - an entry with link V; "err=kw|kw" - an entry whose
# link is neither "ok" nor "none" and whose error holds a keyword.  The
# chain never lists more than 4 files here (no test chain is deeper).
info_shows() {
    $PY - "$1" "$2" <<'EOF'
import json, sys
d = json.load(open(sys.argv[1]))
spec = sys.argv[2]
ch = d.get("chain") or []
if len(ch) > 4:
    print("the chain lists %d files: %s ... %s" % (len(ch), ch[:3], ch[-1]))
    sys.exit(1)
kind, _, val = spec.partition("=")
for c in ch:
    if kind == "link" and c.get("link") == val:
        sys.exit(0)
    if kind == "err" and c.get("link") not in ("ok", "none") and any(
            k.lower() in str(c.get("error", "")).lower()
            for k in val.split("|")):
        sys.exit(0)
print("no entry with %s: %s" % (spec, json.dumps(ch)[:400]))
sys.exit(1)
EOF
}

# survey <label> <info spec> <all> <any> <files to keep unchanged> --
# <top>: info, check and cat of a broken chain's top.  info may fail with
# one line, or succeed with JSON that shows the damage (info_shows); check
# exits 0 or 1; cat fails as expect_fail says.  The files are unchanged.
survey() {
    local label=$1 spec=$2 all=$3 any=$4 files=() top rc h why
    shift 4
    while [ "$1" != -- ]; do files+=("$1"); shift; done
    top=$2
    h=$(sha "${files[@]}")
    rc=$(run i.out i.err vhd info --json "$top")
    if sane "$label: vhd info" "$rc" i.err; then
        if [ "$rc" = 0 ] && why=$(info_shows i.out "$spec"); then
            ok "$label: vhd info succeeds and shows it ($spec)"
        elif [ "$rc" = 1 ] && [ "$(wc -l <i.err)" = 1 ]; then
            ok "$label: vhd info fails: $(cut -c1-120 i.err)"
        else
            not_ok "$label: vhd info fails, or shows the damage ($spec)"
            diag "rc $rc: $(head -2 i.err) ${why:-}"
        fi
    fi
    rc=$(run c.out c.err vhd check "$top")
    if sane "$label: vhd check" "$rc" c.err; then
        if [ "$rc" = 0 ] || [ "$rc" = 1 ]; then
            ok "$label: vhd check exits $rc: $(cat c.out c.err | head -1 |
                cut -c1-100)"
        else
            not_ok "$label: vhd check exits 0 or 1 (rc $rc)"
        fi
    fi
    expect_fail "$label" cat "$all" "$any" "$top"
    eq "$label: the files are unchanged" "$(sha "${files[@]}")" "$h"
}

# accept <label> <top> <shadow> [cat args]: cat succeeds and equals.
accept() {
    local label=$1 top=$2 raw=$3 rc
    shift 3
    rc=$(run a.out a.err vhd cat "$@" "$top")
    if [ "$rc" != 0 ]; then
        not_ok "$label: vhd cat succeeds"
        diag "rc $rc: $(head -2 a.err)"
    else
        t "$label: vhd cat reads the expected content" cmp a.out "$raw"
    fi
    rm -f a.out
}

# mkchain <dir> [ls] [size]: base.vhdx (data) <- child.vhdx (data) <-
# grand.vhdx (data) in <dir>, with shadows base.raw, child.raw, grand.raw.
mkchain() {
    local d=$1 ls=${2:-512} size=${3:-32M} bytes
    bytes=$(size_of "$size")
    rm -rf "$d"
    mkdir -p "$d"
    (
        cd "$d" || exit 1
        tm vhd new base.vhdx --size "$size" --block-size 1M \
            --logical-sector "$ls" || exit 1
        truncate -s "$bytes" base.raw
        tm_write base.vhdx base.raw 0 0x11 $((3 * MiB + 123)) || exit 1
        tm_write base.vhdx base.raw $((bytes - 5000)) 0x12 5000 || exit 1
        tm vhd new child.vhdx --parent base.vhdx --block-size 2M || exit 1
        cp base.raw child.raw
        tm_write child.vhdx child.raw 1000 0x21 3000 || exit 1
        tm_write child.vhdx child.raw $((2 * MiB - 7)) 0x22 $((MiB + 9)) ||
            exit 1
        tm vhd new grand.vhdx --parent child.vhdx --block-size 1M || exit 1
        cp child.raw grand.raw
        tm_write grand.vhdx grand.raw 77 0x31 1000 || exit 1
    ) || { echo "Bail out! cannot build a chain in $d"; exit 1; }
}

# ---- the parent changed after the child was made -----------------------

mkchain chg
tm_write chg/base.vhdx chg/base.raw 5 0x99 1
survey "parent changed" link=changed "child.vhdx|base.vhdx" - \
    chg/base.vhdx chg/child.vhdx -- chg/child.vhdx
survey "grandparent changed (read through the grandchild)" link=changed \
    "child.vhdx|base.vhdx" - chg/base.vhdx chg/child.vhdx chg/grand.vhdx -- \
    chg/grand.vhdx
expect_fail "parent changed" read "child.vhdx|base.vhdx" - \
    chg/child.vhdx --offset 0 --length 512
expect_fail "parent changed: writing into the child" write \
    "child.vhdx|base.vhdx" - chg/child.vhdx --offset 0 --pattern 1 --length 1

# ---- the parent missing --------------------------------------------------

mkchain miss
mv miss/base.vhdx miss/elsewhere.vhdx
survey "parent missing" link=missing "base.vhdx" - \
    miss/elsewhere.vhdx miss/child.vhdx -- miss/child.vhdx
survey "grandparent missing (read through the grandchild)" link=missing \
    "base.vhdx" - miss/child.vhdx miss/grand.vhdx -- miss/grand.vhdx
# The immediate parent given on the command line.
accept "parent missing, given with --parent" miss/child.vhdx miss/child.raw \
    --parent miss/elsewhere.vhdx
tm vhd new miss/other.vhdx --size 32M --block-size 1M
expect_fail "parent missing: --parent names a file that is not the parent" \
    cat "child.vhdx|other.vhdx" - --parent miss/other.vhdx miss/child.vhdx
expect_fail "vhd new --parent of a missing file" new "nothere.vhdx" - \
    miss/new.vhdx --parent miss/nothere.vhdx
t "vhd new --parent of a missing file leaves no file behind" \
    test ! -e miss/new.vhdx

# ---- loops ------------------------------------------------------------------

mkchain lp
# child's parent becomes grand (grand's parent is child): a two-file loop.
$CP locator lp/child.vhdx "parent_linkage=@dwg:lp/grand.vhdx" \
    'relative_path=.\grand.vhdx'
survey "loop child <-> grand" "err=loop|cycle|circular|itself|twice" - \
    "loop|cycle|circular|itself|twice" \
    lp/child.vhdx lp/grand.vhdx -- lp/grand.vhdx
survey "loop child <-> grand, opened at the other end" \
    "err=loop|cycle|circular|itself|twice" - \
    "loop|cycle|circular|itself|twice" \
    lp/child.vhdx lp/grand.vhdx -- lp/child.vhdx
mkchain slf
$CP locator slf/child.vhdx "parent_linkage=@dwg:slf/child.vhdx" \
    'relative_path=.\child.vhdx'
survey "a file its own parent" "err=loop|cycle|circular|itself|twice" - \
    "loop|cycle|circular|itself|twice" \
    slf/child.vhdx -- slf/child.vhdx
mkchain spx
h=$(sha spx/*.vhdx)
expect_fail "set-parent --force making a loop" set-parent - \
    "loop|cycle|circular|itself|descendant|child of" \
    --force spx/child.vhdx spx/grand.vhdx
eq "set-parent --force making a loop leaves the files unchanged" \
    "$(sha spx/*.vhdx)" "$h"
accept "set-parent --force making a loop: the chain still reads" \
    spx/grand.vhdx spx/grand.raw

# ---- logical sector sizes ------------------------------------------------------

mkchain s4k 4096
mkchain s512 512
cp s512/base.vhdx s4k/base512.vhdx
$CP locator s4k/child.vhdx "parent_linkage=@dwg:s4k/base512.vhdx" \
    'relative_path=.\base512.vhdx'
survey "4096-byte child, 512-byte parent" err=sector - sector \
    s4k/child.vhdx s4k/base512.vhdx -- s4k/child.vhdx
cp s4k/base.vhdx s512/base4k.vhdx
$CP locator s512/child.vhdx "parent_linkage=@dwg:s512/base4k.vhdx" \
    'relative_path=.\base4k.vhdx'
survey "512-byte child, 4096-byte parent" err=sector - sector \
    s512/child.vhdx s512/base4k.vhdx -- s512/child.vhdx

# ---- a parent larger than the child ------------------------------------------

mkchain big
tm vhd new big/large.vhdx --size 48M --block-size 1M
tm vhd write big/large.vhdx --offset 0 --pattern 0x44 --length 4096
$CP locator big/child.vhdx "parent_linkage=@dwg:big/large.vhdx" \
    'relative_path=.\large.vhdx'
survey "parent larger than the child" "err=larger|bigger|size" - \
    "larger|bigger|size" \
    big/child.vhdx big/large.vhdx -- big/child.vhdx
expect_fail "vhd new --parent with --size below the parent's" new - \
    "larger|bigger|smaller|size" big/small.vhdx --parent big/base.vhdx \
    --size 16M
t "the refused child leaves no file behind" test ! -e big/small.vhdx

# ---- damaged locators ------------------------------------------------------------

# loc_case <label> <any-keywords> <chainpatch args, FILE = the child>
loc_case() {
    local label=$1 kws=$2 a=() x
    shift 2
    mkchain lc
    for x in "$@"; do a+=("${x//FILE/lc/child.vhdx}"); done
    if ! $CP "${a[@]}" 2>cp.err; then
        not_ok "$label: chainpatch $*"
        diag "$(cat cp.err)"
        return
    fi
    survey "$label" "err=$kws" - "$kws" lc/child.vhdx lc/base.vhdx -- \
        lc/child.vhdx
    survey "$label (through the grandchild)" "err=$kws" - "$kws" \
        lc/child.vhdx lc/base.vhdx lc/grand.vhdx -- lc/grand.vhdx
}

loc_case "locator without a path" "path|locator" \
    locator FILE "parent_linkage=@dwg:lc/base.vhdx"
loc_case "locator without parent_linkage" "linkage|locator" \
    locator FILE 'relative_path=.\base.vhdx'
loc_case "parent_linkage not a GUID" "linkage|locator|guid" \
    locator FILE 'parent_linkage={not-a-guid}' 'relative_path=.\base.vhdx'
loc_case "locator of another type" "locator|type" \
    locator-type FILE 11111111-2222-3333-4444-555555555555
loc_case "empty locator item" "locator" locator-raw FILE empty
loc_case "locator of random bytes" "locator" locator-raw FILE random:300
loc_case "locator with KeyValueCount 65535" "locator" locator-count FILE 65535
loc_case "locator value offset past the item" "locator" locator-offsets FILE
loc_case "HasParent without a locator" "locator|parent" locator-remove FILE
loc_case "locator with only a volume path" "base.vhdx|volume|path|locator" \
    locator FILE "parent_linkage=@dwg:lc/base.vhdx" \
    'volume_path=\\?\Volume{01234567-89ab-cdef-0123-456789abcdef}\base.vhdx'

# ---- accepted oddities ------------------------------------------------------------

mkchain ok
abs=$(cd ok && pwd -P)
zabs="Z:$(echo "$abs" | tr / '\\')"
$CP locator --keep ok/child.vhdx 'parent_linkage={01234567-89ab-cdef-0123-456789abcdef}' \
    "parent_linkage2=@dwg:ok/base.vhdx"
accept "parent_linkage wrong, parent_linkage2 right" ok/grand.vhdx ok/grand.raw
eq "parent_linkage2: info shows the chain linked" \
    "$(tm vhd info --json ok/grand.vhdx | json_get - chain |
       grep -o '"link": "[a-z]*"' | tr '\n' ' ')" \
    '"link": "ok" "link": "ok" "link": "none" '
$CP locator --keep ok/child.vhdx "parent_linkage=@DWG:ok/base.vhdx" \
    'parent_linkage2={01234567-89ab-cdef-0123-456789abcdef}'
accept "upper-case parent_linkage, wrong parent_linkage2" ok/grand.vhdx \
    ok/grand.raw
$CP locator ok/child.vhdx "parent_linkage=@dwg:ok/base.vhdx" \
    'relative_path=.\gone.vhdx' "absolute_win32_path=$zabs\\base.vhdx"
accept "relative_path wrong, absolute_win32_path (Z:) right" ok/grand.vhdx \
    ok/grand.raw
$CP locator ok/child.vhdx "parent_linkage=@dwg:ok/base.vhdx" \
    "absolute_win32_path=\\\\?\\$zabs\\base.vhdx"
accept "only absolute_win32_path, \\\\?\\Z: form" ok/grand.vhdx ok/grand.raw
$CP locator ok/child.vhdx "parent_linkage=@dwg:ok/base.vhdx" \
    'relative_path=.\gone.vhdx' 'absolute_win32_path=C:\vms\gone.vhdx'
expect_fail "both paths wrong: the error names them" cat "gone.vhdx" - \
    ok/child.vhdx
$CP locator ok/child.vhdx "parent_linkage=@dwg:ok/base.vhdx" \
    'relative_path=.\base.vhdx'
accept "locator restored" ok/grand.vhdx ok/grand.raw

# ---- set-parent to another file ----------------------------------------------------

mkchain sp
tm vhd new sp/other.vhdx --size 32M --block-size 1M
truncate -s 32M sp/other.raw
tm_write sp/other.vhdx sp/other.raw 0 0x55 $((5 * MiB))
h=$(sha sp/child.vhdx)
expect_fail "set-parent to a file that is not the parent" set-parent \
    "other.vhdx" - sp/child.vhdx sp/other.vhdx
eq "the refused set-parent leaves the child unchanged" \
    "$(sha sp/child.vhdx)" "$h"
if tm vhd set-parent --force sp/child.vhdx sp/other.vhdx; then
    ok "set-parent --force to another file"
    # What the child wrote reads as before; its blocks that hold nothing
    # (NOT_PRESENT) read the new parent.  (Sectors next to the child's
    # writes depend on how it allocates, so they are not compared.)
    tm vhd cat sp/child.vhdx >sp/now.raw
    if out=$($PY - "$TM_TOOLS" sp/child.vhdx sp/now.raw sp/child.raw \
          sp/other.raw $((MiB)) $((2 * MiB)) <<'EOF'
import sys
sys.path.insert(0, sys.argv[1])
import chainpatch
now, child, other = (open(p, "rb").read() for p in sys.argv[3:6])
bad = []
# The child's writes (mkchain): [1000, 4000) and [2 MiB - 7, 3 MiB + 2).
M = 1024 * 1024
for a, b in ((1000, 4000), (2 * M - 7, 3 * M + 2)):
    if now[a:b] != child[a:b]:
        bad.append("child's write [%d, %d) reads differently" % (a, b))
st, _ = chainpatch.block_states(sys.argv[2])
bs = 2 * M
for blk in range(len(now) // bs):
    if blk not in st and now[blk * bs:(blk + 1) * bs] != \
            other[blk * bs:(blk + 1) * bs]:
        bad.append("NOT_PRESENT block %d does not read the new parent" % blk)
print("; ".join(bad))
sys.exit(1 if bad else 0)
EOF
); then
        ok "after set-parent --force, reads use the new parent"
    else
        not_ok "after set-parent --force, reads use the new parent"
        diag "$out"
    fi
    eq "after set-parent --force, info links ok" \
        "$(tm vhd info --json sp/child.vhdx | json_get - chain |
           grep -o '"link": "[a-z]*"' | tr '\n' ' ')" \
        '"link": "ok" "link": "none" '
    diag "after set-parent --force, the grandchild's chain: $(tm vhd info \
        --json sp/grand.vhdx | json_get - chain | grep -o '"link": "[a-z]*"' |
        tr '\n' ' ')"
else
    not_ok "set-parent --force to another file"
fi

finish
