#!/usr/bin/env bash
# convert.sh - tidemark vhd convert against qemu-img convert, same input,
# same run.  Input: a 2 GiB raw image, half random data and half zeros
# (4 MiB extents: random, hole, random, written zeros, ...), in the page
# cache.  Reports the median of REPEAT runs for each command, the ratio to
# qemu-img, and 'cp' of the same data as the physical limit beside them.
#
#   make bench                 # or: TIDEMARK=build/cmd/tidemark/tidemark bash bench/convert.sh
#   BENCH_DIR=/dev/shm REPEAT=7 SIZE_MB=2048 bash bench/convert.sh
set -euo pipefail
tm=${TIDEMARK:-build/cmd/tidemark/tidemark}
tm=$(cd "$(dirname "$tm")" && pwd)/$(basename "$tm")
repeat=${REPEAT:-5}
size_mb=${SIZE_MB:-2048}
dir=${BENCH_DIR:-/tmp}
work=$(mktemp -d "$dir/tm-bench.XXXXXX")
trap 'rm -rf "$work"' EXIT
cd "$work"
medium=$(df --output=fstype "$work" | tail -1 | tr -d ' ')

# The input.
truncate -s "${size_mb}M" in.raw
for ((mb = 0; mb < size_mb; mb += 4)); do
  case $(( (mb / 4) % 4 )) in
    0|2) head -c 4M /dev/urandom | dd of=in.raw bs=4M seek=$((mb / 4)) conv=notrunc status=none ;;
    3) dd if=/dev/zero of=in.raw bs=4M count=1 seek=$((mb / 4)) conv=notrunc status=none ;;
  esac
done
cat in.raw > /dev/null

# median SECONDS of "$@" run $repeat times; removes outputs between runs.
timeit() {
  local out=$1; shift
  local t=()
  for ((i = 0; i < repeat; i++)); do
    rm -f "$out"
    local s e
    s=$(date +%s.%N)
    "$@" >/dev/null
    e=$(date +%s.%N)
    t+=("$(echo "$e - $s" | bc -l)")
  done
  printf '%s\n' "${t[@]}" | sort -g | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'
}

gbps() { echo "scale=2; $size_mb / 1024 / $1" | bc -l; }

echo "input: ${size_mb} MiB raw, half random, half zeros; medium: $medium ($dir); $repeat runs, medians"
echo "cpu: $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ *//'); $(nproc) cores"
echo

t_cp=$(timeit cp.raw cp --sparse=never in.raw cp.raw)
t_tm_w=$(timeit tm.vhdx "$tm" vhd convert in.raw tm.vhdx --dynamic --block-size 32M)
t_q_w=$(timeit q.vhdx qemu-img convert -f raw -O vhdx -o subformat=dynamic,block_size=32M in.raw q.vhdx)
"$tm" vhd convert in.raw tm.vhdx --dynamic --block-size 32M
qemu-img convert -f raw -O vhdx -o subformat=dynamic,block_size=32M in.raw q.vhdx
t_tm_r=$(timeit tm.raw "$tm" vhd convert tm.vhdx tm.raw)
t_q_r=$(timeit q.raw qemu-img convert -f vhdx -O raw tm.vhdx q.raw)
"$tm" vhd convert tm.vhdx tm.raw
qemu-img convert -f vhdx -O raw tm.vhdx q.raw
cmp tm.raw in.raw
cmp q.raw in.raw

printf '| operation | tidemark s | qemu-img s | ratio (qemu/tidemark) | tidemark GB/s | cp s |\n'
printf '|---|---|---|---|---|---|\n'
printf '| raw → vhdx (write) | %.3f | %.3f | %.2f× | %s | %.3f |\n' "$t_tm_w" "$t_q_w" \
  "$(echo "$t_q_w / $t_tm_w" | bc -l)" "$(gbps "$t_tm_w")" "$t_cp"
printf '| vhdx → raw (read) | %.3f | %.3f | %.2f× | %s | %.3f |\n' "$t_tm_r" "$t_q_r" \
  "$(echo "$t_q_r / $t_tm_r" | bc -l)" "$(gbps "$t_tm_r")" "$t_cp"
