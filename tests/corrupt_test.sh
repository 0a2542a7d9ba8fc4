#!/bin/bash
# SPDX-License-Identifier: MIT
# corrupt_test.sh - bad input gets a clear error, never a crash or a hang.
#
# tools/corrupt.py writes ~65 mutations of a good file (headers, region
# tables, metadata, BAT, log, truncation; see its manifest) for three bases:
# a tidemark file with 512-byte sectors, one with 4096-byte sectors, and a
# QEMU file.  For each, 'vhd info', 'vhd cat' and 'vhd check' run under
# 'timeout 20' and must:
#   - never time out or die of a signal, never exit 2 (usage);
#   - exit 0/1 as the manifest says; an error is one stderr line naming the
#     problem (one of the case's keywords, case-insensitive, file name
#     removed); fallbacks (one bad header or region table, unknown optional
#     regions/items, ...) read exactly the base's content;
#   - leave the file unchanged (all three open read-only);
#   - for files that must be refused, 'vhd check --repair' (a read-write
#     open) fails the same way and does not write to the file either.
. "${TM_TOOLS:-$(dirname "$0")/tools}/lib.sh"
need_tools qemu-img qemu-io cmp sha256sum timeout
need_tidemark
mk_scratch
cd "$SCRATCH" || exit 1

sha() { sha256sum "$1" | cut -d' ' -f1; }

# run <out> <err> <cmd...>: tidemark under a 20 s timeout; prints rc.
run() {
    local out=$1 err=$2
    shift 2
    timeout 20 "$TIDEMARK" "$@" >"$out" 2>"$err"
    echo $?
}

# has_kw <file> <kw|kw|...> <name to strip>: a keyword in the file, once the
# file name is removed.
has_kw() {
    local f=$1 kws=$2 strip=$3 k text
    text=$(sed "s/$strip//g" "$f")
    IFS='|' read -r -a ks <<<"$kws"
    for k in "${ks[@]}"; do
        if grep -qiF -- "$k" <<<"$text"; then
            return 0
        fi
    done
    return 1
}

# judge <label> <rc> <err file> <want: ok|error|maybe> <kws> <file name>
judge() {
    local label=$1 rc=$2 err=$3 want=$4 kws=$5 name=$6
    if [ "$rc" -ge 124 ] || [ "$rc" = 2 ]; then
        not_ok "$label: rc $rc (timeout, signal or usage error)"
        diag "$(head -3 "$err")"
        return
    fi
    case $want in
    ok)
        if [ "$rc" = 0 ]; then
            ok "$label: succeeds"
        else
            not_ok "$label: succeeds"
            diag "rc $rc: $(head -3 "$err")"
        fi
        ;;
    error|maybe)
        if [ "$rc" = 0 ] && [ "$want" = maybe ]; then
            ok "$label: succeeds (allowed: the damage is not on its path)"
            return
        fi
        if [ "$rc" != 1 ]; then
            not_ok "$label: fails with exit 1"
            diag "rc $rc"
            return
        fi
        local n
        n=$(wc -l <"$err")
        if [ "$n" -ne 1 ]; then
            not_ok "$label: fails with one line on stderr"
            diag "$n lines: $(head -3 "$err")"
        elif ! has_kw "$err" "$kws" "$name"; then
            not_ok "$label: error names the problem ($kws)"
            diag "$(cat "$err")"
        else
            ok "$label: fails: $(sed "s/$name//g" "$err" | cut -c1-110)"
        fi
        ;;
    esac
}

# expected_raw <base raw> <zero ranges "off:len,..."> <out>
expected_raw() {
    cp "$1" "$3"
    local r
    IFS=',' read -r -a rs <<<"$2"
    for r in "${rs[@]}"; do
        [ -n "$r" ] && zero_range "$3" "${r%%:*}" "${r##*:}"
    done
}

run_catalogue() {
    local label=$1 base=$2 baseraw=$3 dir=$1.cases
    local out
    if ! out=$($PY "$TM_TOOLS/corrupt.py" "$base" "$dir" 2>&1); then
        not_ok "$label: corrupt.py on the base file"
        diag "$out"
        return
    fi
    ok "$label: $out"
    local file name expect check_rc lazy content kws zr
    while IFS=$'\t' read -r file name expect check_rc lazy content kws zr; do
        local fn h rc want_info want_cat
        fn=$(basename "$file")
        h=$(sha "$file")
        local tag="$label/$name"
        if [ "$expect" = ok ]; then
            want_info=ok
            want_cat=ok
        else
            want_info=error
            want_cat=error
            [ "$lazy" = info ] && want_info=maybe
            [ "$lazy" = check ] && { want_info=maybe; want_cat=maybe; }
        fi
        rc=$(run info.out info.err vhd info "$file")
        judge "$tag: vhd info" "$rc" info.err "$want_info" "$kws" "$fn"
        rc=$(run cat.out cat.err vhd cat "$file")
        judge "$tag: vhd cat" "$rc" cat.err "$want_cat" "$kws" "$fn"
        if [ "$rc" = 0 ] && [ "$content" = base ]; then
            expected_raw "$baseraw" "$zr" exp.raw
            t "$tag: vhd cat reads the expected content" cmp cat.out exp.raw
            rm -f exp.raw
        fi
        rm -f cat.out
        rc=$(run check.out check.err vhd check "$file")
        cat check.out check.err >check.all
        if [ "$rc" -ge 124 ] || [ "$rc" = 2 ]; then
            not_ok "$tag: vhd check: rc $rc (timeout, signal or usage)"
        elif [ "$check_rc" != null ] && [ "$rc" != "$check_rc" ]; then
            not_ok "$tag: vhd check exits $check_rc"
            diag "rc $rc: $(head -4 check.all)"
        elif [ "$rc" = 1 ] && [ "$expect" = error ] &&
             ! has_kw check.all "$kws" "$fn"; then
            not_ok "$tag: vhd check names the problem ($kws)"
            diag "$(head -4 check.all)"
        else
            ok "$tag: vhd check exits $rc"
        fi
        eq "$tag: read-only commands leave the file unchanged" \
            "$(sha "$file")" "$h"
        if [ "$expect" = error ] && [ "$lazy" = - ]; then
            # A read-write open of a file it refuses must not write to it.
            rc=$(run rw.out rw.err vhd check --repair "$file")
            judge "$tag: vhd check --repair" "$rc" rw.err error "$kws" "$fn"
            eq "$tag: a refused read-write open leaves the file unchanged" \
                "$(sha "$file")" "$h"
        fi
        rm -f "$file"
    done < <($PY - "$dir/manifest.json" <<'EOF'
import json, sys
for c in json.load(open(sys.argv[1])):
    print("\t".join([c["file"], c["name"], c["expect"],
                     "null" if c["check_rc"] is None else str(c["check_rc"]),
                     c["lazy"] or "-", c["content"] or "-",
                     "|".join(c["keywords"]) or "-",
                     ",".join("%d:%d" % (o, n) for o, n in c["zero_ranges"])
                     or ""]))
EOF
)
    rm -rf "$dir"
}

# The same writes into every base: blocks 0, 1, 5 and 63 (1 MiB blocks).
W=("0 0x11 65536" "1048576 0x12 1048576" "5242880 0x13 4096"
   "66060288 0x14 1048576")

for ls in 512 4096; do
    rm -f base.vhdx
    truncate -s 0 base.shadow
    truncate -s 64M base.shadow
    tm vhd new base.vhdx --size 64M --block-size 1M --logical-sector $ls ||
        { not_ok "tidemark base ($ls): vhd new"; continue; }
    for w in "${W[@]}"; do
        set -- $w
        tm_write base.vhdx base.shadow "$1" "$2" "$3"
    done
    t "tidemark base ($ls) reads right" cat_equals base.vhdx base.shadow
    run_catalogue "tm$ls" base.vhdx base.shadow
done

# 'check --repair' mends what open tolerates: a damaged header, a damaged
# region table copy, or both; the result passes our check, the independent
# dumper's writer rules (both headers valid, both region tables identical),
# qemu-img check, and reads the same bytes.
rm -f base.vhdx
truncate -s 0 base.shadow
truncate -s 64M base.shadow
tm vhd new base.vhdx --size 64M --block-size 1M
for w in "${W[@]}"; do
    set -- $w
    tm_write base.vhdx base.shadow "$1" "$2" "$3"
done
for dmg in "hdr1:$((0x10063))" "hdr2:$((0x20063))" "rt1:$((0x30063))" \
           "rt2:$((0x40063))" "hdr1+rt2:$((0x10063)),$((0x40063))"; do
    name=${dmg%%:*}
    cp base.vhdx mend.vhdx
    IFS=',' read -r -a offs <<<"${dmg#*:}"
    for o in "${offs[@]}"; do
        printf '\xff' | dd of=mend.vhdx bs=1 seek="$o" conv=notrunc status=none
    done
    rc=$(run c.out c.err vhd check mend.vhdx)
    eq "repair $name: damage seen by check" "$rc" 1
    rc=$(run r.out r.err vhd check --repair mend.vhdx)
    eq "repair $name: check --repair exits 0" "$rc" 0
    t "repair $name: says what it repaired" grep -q 'repaired:' r.out
    rc=$(run c.out c.err vhd check mend.vhdx)
    eq "repair $name: clean afterwards" "$rc" 0
    t "repair $name: writer rules hold (dumper)" canonical mend.vhdx
    t "repair $name: qemu-img check clean" qemu_check_clean mend.vhdx
    t "repair $name: content unchanged" cat_equals mend.vhdx base.shadow
done

rm -f base.vhdx
qemu-img create -q -f vhdx -o subformat=dynamic,block_size=1M,block_state_zero=off \
    base.vhdx 64M
$PY "$TM_TOOLS/mkdirty.py" --require-regions base.vhdx
args=()
for w in "${W[@]}"; do
    set -- $w
    args+=(-c "write -P $2 $1 $3")
done
qemu-io -f vhdx "${args[@]}" base.vhdx >/dev/null
qemu_raw base.vhdx base.shadow
t "qemu base reads right" cat_equals base.vhdx base.shadow
run_catalogue qemu base.vhdx base.shadow

finish
