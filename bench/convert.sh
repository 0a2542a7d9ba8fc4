#!/usr/bin/env bash
# convert.sh - tidemark vhd convert against qemu-img convert, same input,
# same run.  Input: a 2 GiB raw image, half random data and half zeros
# (4 MiB extents: random, hole, random, written zeros, ...), in the page
# cache.  Reports the median of REPEAT runs for each command and the ratio
# to qemu-img, beside the physical limit: 'cp' of just the non-zero data
# (the bytes any converter must write) and memcpy of the same amount.
#
# tidemark flushes what it wrote before it exits; qemu-img's default cache
# mode for convert ('unsafe') never flushes.  On tmpfs a flush costs
# nothing, so that is the like-for-like comparison; on ext4 qemu-img is
# also run with '-t writeback', which flushes, for the same durability.
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
# Just the data: what every converter has to copy.
for ((mb = 0; mb < size_mb; mb += 8)); do
  dd if=in.raw bs=4M skip=$((mb / 4)) count=1 status=none
done > data.raw

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

gbps() { printf '%.2f' "$(echo "$size_mb / 1024 * 1.073741824 / $1" | bc -l)"; }

# memcpy of the data, the floor under any copy (python3's bytes copy is
# a plain memcpy of one buffer).
t_memcpy=$(python3 -c '
import time, sys
n = int(sys.argv[1]) << 20
a = bytearray(n); b = bytearray(n)
best = 9e9
for _ in range(5):
    t = time.perf_counter(); b[:] = a; best = min(best, time.perf_counter() - t)
print(best)' $((size_mb / 2)))

echo "input: ${size_mb} MiB raw, half random, half zeros; medium: $medium ($dir); $repeat runs, medians"
echo "cpu: $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ *//'); $(nproc) cores"
echo

t_cp=$(timeit cp.raw cp data.raw cp.raw)
t_cps=$(timeit cp.raw dd if=data.raw of=cp.raw bs=8M conv=fsync status=none)
t_tm_w=$(timeit tm.vhdx "$tm" vhd convert in.raw tm.vhdx --dynamic --block-size 32M)
t_q_w=$(timeit q.vhdx qemu-img convert -f raw -O vhdx -o subformat=dynamic,block_size=32M in.raw q.vhdx)
t_qs_w=$(timeit q.vhdx qemu-img convert -t writeback -f raw -O vhdx -o subformat=dynamic,block_size=32M in.raw q.vhdx)
"$tm" vhd convert in.raw tm.vhdx --dynamic --block-size 32M
qemu-img convert -f raw -O vhdx -o subformat=dynamic,block_size=32M in.raw q.vhdx
t_tm_r=$(timeit tm.raw "$tm" vhd convert tm.vhdx tm.raw)
t_q_r=$(timeit q.raw qemu-img convert -f vhdx -O raw tm.vhdx q.raw)
t_qs_r=$(timeit q.raw qemu-img convert -t writeback -f vhdx -O raw tm.vhdx q.raw)
"$tm" vhd convert tm.vhdx tm.raw
qemu-img convert -f vhdx -O raw tm.vhdx q.raw
cmp tm.raw in.raw
cmp q.raw in.raw

ratio() { printf '%.2f×' "$(echo "$1 / $2" | bc -l)"; }
echo "physical limit: cp of the $((size_mb / 2)) MiB of data $(printf '%.3f' "$t_cp") s;" \
  "with fsync $(printf '%.3f' "$t_cps") s; memcpy of it $(printf '%.3f' "$t_memcpy") s"
echo
printf '| operation | tidemark s (GB/s) | qemu-img s | ratio | qemu-img -t writeback s | ratio |\n'
printf '|---|---|---|---|---|---|\n'
printf '| raw → vhdx (write) | %.3f (%s) | %.3f | %s | %.3f | %s |\n' "$t_tm_w" "$(gbps "$t_tm_w")" \
  "$t_q_w" "$(ratio "$t_q_w" "$t_tm_w")" "$t_qs_w" "$(ratio "$t_qs_w" "$t_tm_w")"
printf '| vhdx → raw (read) | %.3f (%s) | %.3f | %s | %.3f | %s |\n' "$t_tm_r" "$(gbps "$t_tm_r")" \
  "$t_q_r" "$(ratio "$t_q_r" "$t_tm_r")" "$t_qs_r" "$(ratio "$t_qs_r" "$t_tm_r")"
