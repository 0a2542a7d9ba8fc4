#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# cli_test.sh - the tidemark program's interface (STYLE 11): every --help
# (of the program, each noun it lists and each verb) exits 0 and fits 80
# columns, every option it prints has an =item in the noun's man page,
# every noun has a man page that tidemark.pod lists, usage errors exit 2
# with one line on stderr, failures exit 1, and the basic commands work
# end to end (new, info, write, read, cat, check, convert; qemu-img
# confirms the bytes when installed).
#
# Environment: TIDEMARK (the program), TM_SRC (the source tree).  Prints
# TAP; exits 1 if any check fails, 77 if TIDEMARK is not set.
set -uo pipefail

tm=${TIDEMARK:-}
src=${TM_SRC:-$(cd "$(dirname "$0")/.." && pwd)}
if [ -z "$tm" ] || [ ! -x "$tm" ]; then
  echo "SKIP: set TIDEMARK to the tidemark program"
  exit 77
fi
pod_top=$src/cmd/tidemark/tidemark.pod

work=$(mktemp -d "${TMPDIR:-/tmp}/tm-cli.XXXXXX")
trap 'rm -rf "$work"' EXIT
out=$work/out
err=$work/err

n=0
failed=0
ok() { n=$((n + 1)); echo "ok $n - $1"; }
not_ok() {
  n=$((n + 1)); failed=$((failed + 1)); echo "not ok $n - $1"
  [ -s "$err" ] && sed 's/^/#   stderr: /' "$err" | head -5
  return 0
}
check() {
  local what=$1; shift
  if "$@"; then ok "$what"; else not_ok "$what"; fi
}

# run CMD...: runs tidemark with stdout in $out, stderr in $err; sets rc.
run() { "$tm" "$@" >"$out" 2>"$err" </dev/null; rc=$?; }

# expect_usage DESC ARGS...: exit 2, one stderr line, naming a --help.
expect_usage() {
  local what=$1; shift
  run "$@"
  if [ "$rc" -eq 2 ] && [ "$(wc -l <"$err")" -eq 1 ] &&
     grep -q "^tidemark: .*see 'tidemark.*--help'$" "$err"; then
    ok "usage error: $what"
  else
    not_ok "usage error: $what (exit $rc)"
  fi
}

# expect_fail DESC ARGS...: exit 1 with one line on stderr.
expect_fail() {
  local what=$1; shift
  run "$@"
  if [ "$rc" -eq 1 ] && [ "$(wc -l <"$err")" -eq 1 ] &&
     grep -q '^tidemark: ' "$err"; then
    ok "failure: $what"
  else
    not_ok "failure: $what (exit $rc)"
  fi
}

# help_ok DESC POD ARGS...: --help exits 0, no line over 80 columns, and
# each long option it shows has an '=item B<--option>' in POD.
help_ok() {
  local what=$1 pod=$2; shift 2
  run "$@"
  if [ "$rc" -ne 0 ] || [ ! -s "$out" ]; then
    not_ok "$what: --help exits 0 (exit $rc)"; return
  fi
  ok "$what: --help exits 0"
  check "$what: --help fits 80 columns" \
    bash -c '! awk "length > 80" "$1" | grep -q .' _ "$out"
  local opt missing=""
  for opt in $(grep -o -- '--[a-z][a-z0-9-]*' "$out" | sort -u); do
    grep -qF "=item B<$opt>" "$pod" || missing="$missing $opt"
  done
  if [ -z "$missing" ]; then
    ok "$what: every option is in $(basename "$pod")"
  else
    not_ok "$what: not in $(basename "$pod"):$missing"
  fi
}

# ---- help and man pages -----------------------------------------------------

help_ok "tidemark" "$pod_top" --help
nouns=$(sed -n 's/^  \([a-z][a-z-]*\)  .*/\1/p' "$out")
check "--help lists nouns" test -n "$nouns"
check "--help lists vhd and rct" \
  bash -c 'grep -qx vhd <<<"$1" && grep -qx rct <<<"$1"' _ "$nouns"
run --version
check "--version prints the version" \
  grep -qE '^tidemark [0-9]+\.[0-9]+\.[0-9]+' "$out"
# Every noun the program lists: its man page, its verbs' --help, usage
# lines and man page sections, each option documented.
pods=("$pod_top")
for noun in $nouns; do
  pod=$src/cmd/tidemark/tidemark-$noun.pod
  pods+=("$pod")
  check "$noun: man page tidemark-$noun.pod exists" test -f "$pod"
  check "$noun: listed in tidemark.pod" grep -qF "=item B<$noun>" "$pod_top"
  check "$noun: tidemark.pod refers to tidemark-$noun(1)" \
    grep -qF "L<tidemark-$noun(1)>" "$pod_top"
  help_ok "tidemark $noun" "$pod" "$noun" --help
  verbs=$(sed -n 's/^  \([a-z][a-z-]*\)  .*/\1/p' "$out")
  check "$noun --help lists verbs" test -n "$verbs"
  for verb in $verbs; do
    help_ok "$noun $verb" "$pod" "$noun" "$verb" --help
    check "$noun $verb: usage line" \
      grep -q "^usage: tidemark $noun $verb " "$out"
    check "$noun $verb: man page section" \
      grep -qF "=head2 tidemark $noun $verb" "$pod"
    check "$noun $verb: in the man page's synopsis" \
      grep -q "^ tidemark $noun $verb " "$pod"
    expect_usage "$noun $verb --no-such-option" \
      "$noun" "$verb" --no-such-option
  done
  expect_usage "no verb for $noun" "$noun"
  expect_usage "unknown verb for $noun" "$noun" frob
done
if command -v podchecker >/dev/null; then
  check "man pages pass podchecker" \
    bash -c 'podchecker -warnings "$@" >/dev/null 2>&1' _ "${pods[@]}"
fi

# ---- usage errors -----------------------------------------------------------

expect_usage "no command"
expect_usage "unknown noun" frob
expect_usage "unknown program option" --frob
expect_usage "no verb" vhd
expect_usage "unknown verb" vhd frob
expect_usage "flag with a value" vhd info --json=yes x.vhdx
expect_usage "missing option value" vhd new "$work/x.vhdx" --size
expect_usage "missing path" vhd new --size 1G
expect_usage "missing --size" vhd new "$work/x.vhdx"
expect_usage "extra argument" vhd info a.vhdx b.vhdx
for bad in 12Q -1 99999999999T "" 1.5G 0x10 12KB; do
  expect_usage "bad size '$bad'" vhd new "$work/x.vhdx" --size "$bad"
  grep -qF -- "--size" "$err" || not_ok "bad size '$bad': names --size"
done
expect_usage "size not a sector multiple" vhd new "$work/x.vhdx" --size 1000
expect_usage "size over 64T" vhd new "$work/x.vhdx" --size 65T
expect_usage "--fixed with --dynamic" \
  vhd new "$work/x.vhdx" --size 1G --fixed --dynamic
expect_usage "block size not a power of two" \
  vhd new "$work/x.vhdx" --size 1G --block-size 3M
expect_usage "block size too small" \
  vhd new "$work/x.vhdx" --size 1G --block-size 512K
expect_usage "bad logical sector" \
  vhd new "$work/x.vhdx" --size 1G --logical-sector 1024
expect_usage "bad log size" vhd new "$work/x.vhdx" --size 1G --log-size 1500K
check "usage errors create nothing" test ! -e "$work/x.vhdx"
expect_usage "bad pattern" vhd write a.vhdx --offset 0 --pattern 256 \
  --length 1
expect_usage "pattern without length" vhd write a.vhdx --offset 0 --pattern 1
expect_usage "read without --length" vhd read a.vhdx --offset 0
expect_usage "convert with one path" vhd convert a.raw
expect_usage "VHDX options for a raw destination" \
  vhd convert a.vhdx b.raw --fixed

# ---- the commands, end to end -----------------------------------------------

disk=$work/disk.vhdx
run vhd new "$disk" --size 64M --block-size 1M
check "vhd new creates a VHDX" test "$rc" -eq 0 -a -s "$disk"
expect_fail "vhd new never overwrites" vhd new "$disk" --size 64M
expect_fail "vhd info of a missing file" vhd info "$work/none.vhdx"
printf 'not a vhdx' >"$work/junk.vhdx"
expect_fail "vhd info of a non-VHDX" vhd info "$work/junk.vhdx"

run vhd info "$disk"
check "vhd info exits 0" test "$rc" -eq 0
check "vhd info shows the virtual size" \
  grep -qE '^virtual size: +67108864 \(64 MiB\)$' "$out"
check "vhd info shows the type" grep -qE '^type: +dynamic$' "$out"
run vhd info --json "$disk"
check "vhd info --json exits 0" test "$rc" -eq 0
if command -v python3 >/dev/null; then
  check "vhd info --json is JSON with the facts" python3 -c '
import json, sys
d = json.load(open(sys.argv[1]))
assert d["virtual_size"] == 64 << 20, d
assert d["type"] == "dynamic" and d["block_size"] == 1 << 20, d
assert d["logical_sector_size"] == 512 and d["blocks_total"] == 64, d
assert d["allocated_bytes"] == 0 and d["log_replayed"] is False, d
assert len(d["virtual_disk_id"]) == 36, d
' "$out"
fi

head -c 3M /dev/urandom >"$work/data"
"$tm" vhd write "$disk" --offset 5M <"$work/data" 2>"$err"
check "vhd write from stdin" test $? -eq 0
run vhd write "$disk" --offset 100K --pattern 0xab --length 4K
check "vhd write --pattern" test "$rc" -eq 0
run vhd read "$disk" --offset 5M --length 3M
check "vhd read returns what was written" cmp -s "$out" "$work/data"
run vhd read "$disk" --offset 100K --length 4K
check "vhd read returns the pattern" \
  cmp -s "$out" <(head -c 4096 /dev/zero | tr '\0' '\253')
expect_fail "vhd read past the end" vhd read "$disk" --offset 64M --length 1
expect_fail "vhd write past the end" \
  vhd write "$disk" --offset 64M --pattern 1 --length 1
run vhd cat "$disk"
check "vhd cat gives the virtual size" test "$(stat -c %s "$out")" -eq 67108864
cp "$out" "$work/disk.img"
run vhd check "$disk"
check "vhd check of a clean file exits 0" test "$rc" -eq 0
run vhd dump "$disk"
check "vhd dump prints something" test "$rc" -eq 0 -a -s "$out"

run vhd convert "$disk" "$work/disk.raw"
check "convert vhdx -> raw" test "$rc" -eq 0
check "raw copy holds the virtual bytes" \
  cmp -s "$work/disk.raw" "$work/disk.img"
run vhd convert "$work/disk.raw" "$work/back.vhdx" --block-size 2M
check "convert raw -> vhdx" test "$rc" -eq 0
run vhd convert "$work/back.vhdx" "$work/fixed.vhdx" --fixed
check "convert vhdx -> fixed vhdx" test "$rc" -eq 0
run vhd convert "$work/fixed.vhdx" "$work/back.raw"
check "convert fixed vhdx -> raw" test "$rc" -eq 0
check "raw -> vhdx -> vhdx -> raw round trip" \
  cmp -s "$work/back.raw" "$work/disk.img"
expect_fail "convert refuses to copy a file onto itself" \
  vhd convert "$work/back.raw" "$work/back.raw"
expect_fail "convert of a missing source" \
  vhd convert "$work/none.raw" "$work/none.vhdx"
check "a failed convert leaves no destination" test ! -e "$work/none.vhdx"
if command -v qemu-img >/dev/null; then
  check "qemu-img reads our VHDX" \
    qemu-img compare -q -f vhdx -F raw "$work/back.vhdx" "$work/disk.img"
  check "qemu-img reads our fixed VHDX" \
    qemu-img compare -q -f vhdx -F raw "$work/fixed.vhdx" "$work/disk.img"
  qemu-img convert -f vhdx -O raw "$disk" "$work/q.raw" 2>"$err"
  check "qemu-img convert -f vhdx agrees with vhd cat" \
    cmp -s "$work/q.raw" "$work/disk.img"
fi

echo "1..$n"
[ "$failed" -eq 0 ]
