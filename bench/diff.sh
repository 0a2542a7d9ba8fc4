#!/usr/bin/env bash
# diff.sh - writing into a differencing child and merging it, against the
# same writes into the parent alone (no peer tool here writes or merges
# differencing VHDX, so the parent alone is the comparison).
#
# Parent: a 4 GiB dynamic VHDX (32 MiB blocks, LOGICAL_SECTOR-byte logical
# sectors, 512 unless told) holding 1 GiB of data, written sequentially in
# 32 MiB extents one every 128 MiB.  Each repetition, on a fresh copy:
#   child   create a differencing child (2 MiB blocks, the default), write
#           1 GiB in random 4 KiB-aligned writes of WRITE_SIZE bytes over
#           the 4 GiB, flush every FLUSH_EVERY writes and at the end, close
#   merge   tm_vhdx_merge_path(child, NULL); the deletion of the folded
#           child is timed apart ('delete')
#   alone   the same writes (same seed) into another copy of the parent
#   raw     the same writes with pwrite into a new sparse 4 GiB raw file,
#           fdatasync at the same points: the floor under child and alone
#   rawcopy pread + pwrite of the 4 KiB slots the writes touched (what a
#           merge folds), ascending, one fdatasync: the floor under merge
# and reports medians of REPEAT runs (each run's numbers go to stderr).
# The first repetition of each write size checks the merged parent
# against the parent written alone with qemu-img compare, when qemu-img
# is installed and opens them (not with 4 KiB logical sectors).
#
# Time: on tmpfs a full run (both write sizes, 7 runs) takes about a
# minute.  On disk, freeing space can dominate: this machine's ext4 is
# mounted with 'discard', every GiB deleted costs 3-30 s depending on
# what else runs, and a repetition writes and deletes ~6 GiB.  So off
# tmpfs the default is the 4 KiB writes alone (3 runs: ~7 minutes); ask
# for the 64 KiB ones with WRITE_SIZES=65536 (~2.5 minutes).
#
#   make bench-diff                               # /tmp (ext4 here)
#   BENCH_DIR=/dev/shm REPEAT=7 bash bench/diff.sh
#   BENCH_QUICK=1 bash bench/diff.sh              # 256 MiB of writes, 1 run
# Also: WRITE_SIZES, LOGICAL_SECTOR (512 or 4096), FLUSH_EVERY, TOTAL_MIB,
# SIZE_MIB, FILL_MIB, DIFFBENCH (the program).
set -euo pipefail
db=${DIFFBENCH:-build/bench/diffbench}
db=$(cd "$(dirname "$db")" && pwd)/$(basename "$db")
quick=${BENCH_QUICK:-0}
if [[ $quick != 0 ]]; then
  repeat=${REPEAT:-1}
  total_mib=${TOTAL_MIB:-256}
else
  repeat=${REPEAT:-3}
  total_mib=${TOTAL_MIB:-1024}
fi
size_mib=${SIZE_MIB:-4096}
fill_mib=${FILL_MIB:-1024}
flush_every=${FLUSH_EVERY:-1024}
logical_sector=${LOGICAL_SECTOR:-512}
dir=${BENCH_DIR:-/tmp}
work=$(mktemp -d "$dir/tm-diffbench.XXXXXX")
trap 'rm -rf "$work"' EXIT
cd "$work"
medium=$(df --output=fstype "$work" | tail -1 | tr -d ' ')
if [[ $medium == tmpfs ]]; then
  write_sizes=${WRITE_SIZES:-4096 65536}
else
  write_sizes=${WRITE_SIZES:-4096}
fi
opts=$(awk -v d="$(df --output=target "$work" | tail -1)" \
  '$2 == d {o = $4} END {print o}' /proc/mounts)

# kv KEY LINE: the value of KEY=value in LINE.
kv() { tr ' ' '\n' <<<"$2" | sed -n "s/^$1=//p"; }
median() { printf '%s\n' "$@" | sort -g | awk '{a[NR] = $1} END {print a[int((NR + 1) / 2)]}'; }
mbps() { printf '%.0f' "$(echo "$1 / 1000000 / $2" | bc -l)"; }
ratio() { printf '%.2f×' "$(echo "$1 / $2" | bc -l)"; }
f3() { printf '%.3f' "$1"; }

echo "medium: $medium ($dir, $opts); $repeat runs, medians"
echo "machine: $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ *//'), kernel $(uname -r), load $(cut -d' ' -f1-3 /proc/loadavg)"
echo "parent: ${size_mib} MiB dynamic, ${logical_sector}-byte logical sectors, ${fill_mib} MiB of data; writes: ${total_mib} MiB, flush every ${flush_every}"

"$db" parent parent.vhdx "$size_mib" "$fill_mib" "$logical_sector" >/dev/null
t_memcpy=$(kv secs "$("$db" memcpy "$total_mib")")
echo "memcpy of ${total_mib} MiB: $(f3 "$t_memcpy") s"
echo

rows=()
for ws in $write_sizes; do
  c=() cw=() cf=() m=() d=() a=() r=() rcp=() uniq=0
  for ((i = 0; i < repeat; i++)); do
    seed=$((i + 1))
    cp --reflink=never --sparse=always parent.vhdx p.vhdx
    line=$("$db" child p.vhdx c.vhdx "$total_mib" "$ws" "$seed" "$flush_every")
    c+=("$(kv secs "$line")") cw+=("$(kv write "$line")") cf+=("$(kv flush "$line")")
    uniq=$(kv unique "$line")
    line=$("$db" merge c.vhdx)
    m+=("$(kv secs "$line")") d+=("$(kv delete "$line")")
    cp --reflink=never --sparse=always parent.vhdx a.vhdx
    line=$("$db" alone a.vhdx "$total_mib" "$ws" "$seed" "$flush_every")
    a+=("$(kv secs "$line")")
    if ((i == 0)) && command -v qemu-img >/dev/null; then
      # Exit 1: the images differ; 2: qemu-img cannot open them (it
      # refuses 4 KiB logical sectors).
      cmp_rc=0
      qemu-img compare -q -f vhdx -F vhdx p.vhdx a.vhdx 2>/dev/null || cmp_rc=$?
      case $cmp_rc in
        0) ;;
        1) echo "merged parent differs from the parent written alone" >&2; exit 1 ;;
        *) echo "qemu-img cannot compare these images; not checked" >&2 ;;
      esac
    fi
    rm -f p.vhdx a.vhdx
    line=$("$db" raw r.raw "$size_mib" "$total_mib" "$ws" "$seed" "$flush_every")
    r+=("$(kv secs "$line")")
    truncate -s "${size_mib}M" d.raw
    line=$("$db" rawcopy r.raw d.raw "$size_mib" "$total_mib" "$ws" "$seed")
    rcp+=("$(kv secs "$line")")
    rm -f r.raw d.raw
    echo "run $((i + 1)), ${ws}-byte writes: child ${c[i]} merge ${m[i]}" \
      "delete ${d[i]} alone ${a[i]} raw ${r[i]} rawcopy ${rcp[i]}" >&2
  done
  mc=$(median "${c[@]}") mcw=$(median "${cw[@]}") mcf=$(median "${cf[@]}")
  mm=$(median "${m[@]}") md=$(median "${d[@]}") ma=$(median "${a[@]}")
  mr=$(median "${r[@]}") mrc=$(median "${rcp[@]}")
  bytes=$((total_mib << 20))
  tot=$(echo "$mc + $mm" | bc -l)
  echo "${ws}-byte writes: child $(f3 "$mc") s (in write calls $(f3 "$mcw"), in flush calls $(f3 "$mcf")); merge folds $((uniq >> 20)) MiB"
  rows+=("$(printf '| %s KiB | %s (%s) | %s (%s) | **%s** | %s (%s) | %s | %s | %s | %s | %s | **%s** |' \
    $((ws / 1024)) "$(f3 "$mc")" "$(mbps "$bytes" "$mc")" \
    "$(f3 "$ma")" "$(mbps "$bytes" "$ma")" "$(ratio "$mc" "$ma")" \
    "$(f3 "$mr")" "$(mbps "$bytes" "$mr")" \
    "$(f3 "$mm")" "$(mbps "$uniq" "$mm")" "$(f3 "$md")" "$(f3 "$mrc")" \
    "$(f3 "$tot")" "$(ratio "$tot" "$ma")")")
done
echo
echo "| writes | child s (MB/s) | parent alone s (MB/s) | child ÷ alone time | raw pwrite floor s (MB/s) | merge s | merge MB/s folded | delete child s | rawcopy floor s | child + merge s | (child + merge) ÷ alone |"
echo "|---|---|---|---|---|---|---|---|---|---|---|"
printf '%s\n' "${rows[@]}"
