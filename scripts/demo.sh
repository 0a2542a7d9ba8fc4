#!/usr/bin/env bash
# demo.sh - tidemark's main job today, on a sample disk: create a dynamic
# VHDX, write to it, convert it to raw and back, show what it holds, take
# a differencing child (a checkpoint), write into it and merge it back,
# track changes between two points and catch a write made behind
# tidemark's back, and let qemu-img and 7-Zip (independent readers)
# confirm the bytes.
set -euo pipefail
tm=${TIDEMARK:-build/cmd/tidemark/tidemark}
tm=$(cd "$(dirname "$tm")" && pwd)/$(basename "$tm")
work=$(mktemp -d /tmp/tidemark-demo.XXXXXX)
trap 'rm -rf "$work"' EXIT
cd "$work"
step() { printf '\n== %s\n' "$*"; }

step "tidemark vhd new sample.vhdx --size 1G --dynamic --block-size 8M"
"$tm" vhd new sample.vhdx --size 1G --dynamic --block-size 8M

step "write a pattern, a text and data across a block boundary"
"$tm" vhd write sample.vhdx --offset 0 --pattern 0xab --length 64K
printf 'tidemark was here\n' | "$tm" vhd write sample.vhdx --offset 1M
head -c 3M /dev/urandom > random.bin
"$tm" vhd write sample.vhdx --offset 14M < random.bin
"$tm" vhd read sample.vhdx --offset 1M --length 18

step "tidemark vhd convert sample.vhdx sample.raw   (sparse raw image)"
"$tm" vhd convert sample.vhdx sample.raw
echo "raw: $(stat -c %s sample.raw) bytes apparent, $(du -k sample.raw | cut -f1) KiB on disk"

step "tidemark vhd convert sample.raw back.vhdx --fixed"
"$tm" vhd convert sample.raw back.vhdx --fixed
cmp <("$tm" vhd cat back.vhdx) sample.raw && echo "back.vhdx holds the same bytes"

step "tidemark vhd info sample.vhdx"
"$tm" vhd info sample.vhdx

step "tidemark vhd check sample.vhdx"
"$tm" vhd check sample.vhdx

step "tidemark vhd new sample-1.avhdx --parent sample.vhdx   (a checkpoint)"
"$tm" vhd new sample-1.avhdx --parent sample.vhdx
printf 'written after the checkpoint\n' |
  "$tm" vhd write sample-1.avhdx --offset 1M
"$tm" vhd read sample-1.avhdx --offset 1M --length 29
"$tm" vhd info sample-1.avhdx | sed -n '/^parent linkage/,$p'
"$tm" vhd cat sample-1.avhdx > child.raw
if command -v 7zz >/dev/null; then
  7zz x -tVHDX -y -o7z sample-1.avhdx >/dev/null
  cmp 7z/sample-1.img child.raw && echo "7-Zip reads the chain the same"
fi

step "tidemark vhd merge sample-1.avhdx   (fold it into sample.vhdx)"
"$tm" vhd merge sample-1.avhdx
cmp <("$tm" vhd cat sample.vhdx) child.raw && echo "sample.vhdx now holds the checkpoint's bytes"
"$tm" vhd convert sample.vhdx merged.raw

step "tidemark rct enable sample.vhdx   (resilient change tracking)"
"$tm" rct enable sample.vhdx
id=$("$tm" rct seal sample.vhdx)
echo "sealed: $id"
"$tm" vhd write sample.vhdx --offset 100M --pattern 0x42 --length 4K
"$tm" vhd write sample.vhdx --offset 300M --pattern 0x43 --length 200K
echo "changed since $id (offset length):"
"$tm" rct changes sample.vhdx --since "$id"
"$tm" rct status sample.vhdx

if command -v qemu-io >/dev/null; then
  step "a write behind tidemark's back (qemu-io) is detected"
  cp sample.vhdx foreign.vhdx
  cp sample.vhdx.rct foreign.vhdx.rct
  cp sample.vhdx.mrt foreign.vhdx.mrt
  qemu-io -f vhdx -c 'write -P 0x66 500M 64K' foreign.vhdx >/dev/null
  if "$tm" rct changes foreign.vhdx --since "$id"; then
    echo "demo: the foreign write went unnoticed" >&2
    exit 1
  fi
  echo "(the next backup of foreign.vhdx is a full one)"
fi

if command -v qemu-img >/dev/null; then
  step "independent check: qemu-img reads our files"
  qemu-img check sample.vhdx
  "$tm" vhd convert sample.vhdx merged.raw
  qemu-img compare -f vhdx -F raw sample.vhdx merged.raw
  qemu-img compare -f vhdx -F raw back.vhdx sample.raw
fi
echo
echo "demo: done"
