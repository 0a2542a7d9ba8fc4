#!/usr/bin/env bash
# rct.sh - what change tracking costs: the same writes through tm_vdisk
# with tracking on and off, through tm_vhdx directly (no vdisk) and with
# pwrite into a raw file, interleaved in one run; then the paging query
# over a 1 TiB disk with 1 M changed extents, and the memory tracking
# takes per TiB.
#
# Disk: a SIZE_MIB (4 GiB) dynamic VHDX, 32 MiB blocks, with every block
# written once before the timed runs (so no write allocates; the runs
# overwrite), and a raw file of the same size, written in full too.  Each
# repetition runs each mode once, in an order rotated by one each time
# (on off vhdx raw, off vhdx raw on, ...), on the same files:
#   on    tm_vdisk_open, tracking turned on (64 KiB granules, a new
#         lineage), then the timed writes with tm_vdisk_write and one
#         tm_vdisk_flush at the end; the first write binds the tracking
#         (DataWriteGuid, .rct persisted) and each 1 GiB region touched
#         costs one .mrt sector write + flush: all inside the timing
#   off   the same with tracking turned off
#   vhdx  the same through tm_vhdx_open_path/write/flush: no vdisk
#   raw   pwrite + fdatasync on the raw file: the floor
# for two write patterns: RAND_WRITES random 4 KiB writes at 4 KiB-aligned
# offsets (a new seed each repetition, the same for every mode), and
# SEQ_MIB of 1 MiB writes back to back from offset 0.  Open and close are
# not timed ('close' of 'on' persists the map; printed per run).  Then
# tm_rct_mark alone over the same sequences ('mark': what tracking adds
# per write, without any disk), memcpy of the bytes, and:
#   query   a QUERY_GIB (1 TiB) dynamic VHDX, nothing allocated, tracking
#           on; seal, QUERY_CHANGES single-granule discards (UNMAP)
#           scattered over it in shuffled order, seal; then full paging
#           loops of tm_vdisk_query_changes since the first ID with
#           ranges[4096], QUERY_REPEAT times (median)
#   memory  'rctbench memory' under /usr/bin/time -v for each of MEM_GIB
#           (1 and 4 TiB), with QUERY_CHANGES changes per TiB: max RSS,
#           the RSS once the changes are marked, and tm_rct_get_info's
#           figure for the same size
#
# Off tmpfs the defaults are 65,536 random writes and 1 GiB sequential
# (each 4 KiB write costs ~35 us in ext4 here): about 2 minutes; on tmpfs
# 262,144 and 2 GiB: about 1 minute.
#
#   make bench-rct                                # /var/tmp (ext4 here)
#   BENCH_DIR=/dev/shm make bench-rct             # tmpfs
#   BENCH_QUICK=1 BENCH_DIR=/dev/shm bash bench/rct.sh   # smoke run
# Also: REPEAT (7), SIZE_MIB, RAND_WRITES, SEQ_MIB, QUERY_GIB,
# QUERY_CHANGES, QUERY_REPEAT, MEM_GIB, RCTBENCH (the program).
set -euo pipefail
rb=${RCTBENCH:-build/bench/rctbench}
rb=$(cd "$(dirname "$rb")" && pwd)/$(basename "$rb")
quick=${BENCH_QUICK:-0}
dir=${BENCH_DIR:-/var/tmp}
if [[ ! -x /usr/bin/time ]]; then
  echo "rct.sh: /usr/bin/time is missing (apt-get install time)" >&2
  exit 1
fi
work=$(mktemp -d "$dir/tm-rctbench.XXXXXX")
trap 'rm -rf "$work"' EXIT
cd "$work"
medium=$(df --output=fstype "$work" | tail -1 | tr -d ' ')
opts=$(awk -v d="$(df --output=target "$work" | tail -1)" \
  '$2 == d {o = $4} END {print o}' /proc/mounts)
if [[ $quick != 0 ]]; then
  repeat=${REPEAT:-1}
  size_mib=${SIZE_MIB:-1024}
  rand_writes=${RAND_WRITES:-16384}
  seq_mib=${SEQ_MIB:-256}
  query_changes=${QUERY_CHANGES:-65536}
  query_repeat=${QUERY_REPEAT:-1}
  mem_gib=${MEM_GIB:-1024}
else
  repeat=${REPEAT:-7}
  size_mib=${SIZE_MIB:-4096}
  # Off tmpfs each 4 KiB write costs ~35 us in the kernel (ext4 here),
  # so fewer writes keep the run near 2 minutes.
  if [[ $medium == tmpfs ]]; then
    rand_writes=${RAND_WRITES:-262144}
    seq_mib=${SEQ_MIB:-2048}
  else
    rand_writes=${RAND_WRITES:-65536}
    seq_mib=${SEQ_MIB:-1024}
  fi
  query_changes=${QUERY_CHANGES:-1048576}
  query_repeat=${QUERY_REPEAT:-7}
  mem_gib=${MEM_GIB:-1024 4096}
fi
query_gib=${QUERY_GIB:-1024}

# kv KEY LINE: the value of KEY=value in LINE.
kv() { tr ' ' '\n' <<<"$2" | sed -n "s/^$1=//p"; }
median() { printf '%s\n' "$@" | sort -g | awk '{a[NR] = $1} END {print a[int((NR + 1) / 2)]}'; }
calc() { echo "$1" | bc -l; }
last() { awk '{print $NF}' <<<"$1"; }
f3() { printf '%.3f' "$1"; }
f2() { printf '%.2f' "$1"; }
f1() { printf '%.1f' "$1"; }
pct() { printf '%+.1f %%' "$(calc "($1 / $2 - 1) * 100")"; }

echo "medium: $medium ($dir, $opts); $repeat runs, medians"
echo "machine: $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ *//'), kernel $(uname -r), load $(cut -d' ' -f1-3 /proc/loadavg)"
echo "disk: ${size_mib} MiB dynamic VHDX, every block written; raw file of the same size, written"

line=$("$rb" fill d.vhdx r.raw "$size_mib")
echo "fill (untimed setup): vhdx $(f3 "$(kv vhdx "$line")") s, raw $(f3 "$(kv raw "$line")") s"
seq_writes=$seq_mib
modes=(on off vhdx raw)
rows=()
marks=()

# bench_pattern NAME PATTERN N WRITE_BYTES
bench_pattern() {
  local name=$1 pattern=$2 n=$3 wlen=$4
  local -A t w f fw c
  local i k m file line ron=() rvh=() rcpu=() mk=() mka=() closes=()
  for m in "${modes[@]}"; do t[$m]="" w[$m]="" f[$m]="" fw[$m]="" c[$m]=""; done
  for ((i = 0; i < repeat; i++)); do
    local seed=$((i + 1)) order=() report=""
    for ((k = 0; k < 4; k++)); do order+=("${modes[(i + k) % 4]}"); done
    for m in "${order[@]}"; do
      file=d.vhdx
      [[ $m == raw ]] && file=r.raw
      line=$("$rb" write "$m" "$file" "$pattern" "$n" "$wlen" "$seed")
      t[$m]+=" $(kv secs "$line")" w[$m]+=" $(kv write "$line")"
      f[$m]+=" $(kv flush "$line")" fw[$m]+=" $(kv first "$line")"
      c[$m]+=" $(kv cpu "$line")"
      [[ $m == on ]] && closes+=("$(kv close "$line")")
      report+=" $m $(kv secs "$line")"
    done
    # Paired ratios: on and off of the same repetition.
    ron+=("$(calc "$(last "${t[on]}") / $(last "${t[off]}")")")
    rvh+=("$(calc "$(last "${t[off]}") / $(last "${t[vhdx]}")")")
    rcpu+=("$(calc "$(last "${c[on]}") / $(last "${c[off]}")")")
    line=$("$rb" mark . "$size_mib" "$pattern" "$n" "$wlen" "$seed")
    mk+=("$(kv secs "$line")") mka+=("$(kv again "$line")")
    echo "run $((i + 1)), $name:$report (s); mark $(kv secs "$line") s" >&2
  done
  local mon moff mvh mraw
  # shellcheck disable=SC2086
  {
    mon=$(median ${t[on]}) moff=$(median ${t[off]})
    mvh=$(median ${t[vhdx]}) mraw=$(median ${t[raw]})
  }
  local us="1000000 / $n"
  local mmk mmka
  mmk=$(median "${mk[@]}") mmka=$(median "${mka[@]}")
  # shellcheck disable=SC2086
  echo "$name: on $(f3 "$mon") s (writes $(f3 "$(median ${w[on]})"), flush $(f3 "$(median ${f[on]})")), off $(f3 "$moff") s (writes $(f3 "$(median ${w[off]})"), flush $(f3 "$(median ${f[off]})")), vhdx $(f3 "$mvh") s (flush $(f3 "$(median ${f[vhdx]})")), raw $(f3 "$mraw") s (flush $(f3 "$(median ${f[raw]})")); close of 'on' $(f3 "$(median "${closes[@]}")") s; first write (binds the tracking when on): on $(f2 "$(calc "$(median ${fw[on]}) * 1000")") ms, off $(f2 "$(calc "$(median ${fw[off]}) * 1000")") ms, vhdx $(f2 "$(calc "$(median ${fw[vhdx]}) * 1000")") ms"
  rows+=("$(printf '| %s | %s | %s | %s | %s | **%s** (%s) | %s | %s (%s) | %s | %s |' \
    "$name" "$(f2 "$(calc "$mraw * $us")")" "$(f2 "$(calc "$mvh * $us")")" \
    "$(f2 "$(calc "$moff * $us")")" "$(f2 "$(calc "$mon * $us")")" \
    "$(pct "$mon" "$moff")" "$(pct "$(median "${ron[@]}")" 1)" \
    "$(pct "$(median "${rcpu[@]}")" 1)" \
    "$(pct "$moff" "$mvh")" "$(pct "$(median "${rvh[@]}")" 1)" \
    "$(pct "$mon" "$mvh")" "$(pct "$mvh" "$mraw")")")
  last_off=$moff
  marks+=("$(printf '| %s | %s | %s | %s |' "$name" \
    "$(f1 "$(calc "$mmk * 1000000000 / $n")")" \
    "$(f1 "$(calc "$mmka * 1000000000 / $n")")" \
    "$(printf '%.2f %%' "$(calc "$mmk / $moff * 100")")")")
}

bench_pattern "4 KiB random × $rand_writes" rand "$rand_writes" 4096
off4k=$last_off
bench_pattern "1 MiB sequential × $seq_writes" seq "$seq_writes" 1048576
rm -f d.vhdx d.vhdx.rct d.vhdx.mrt r.raw
# The same random 4 KiB marks spread over a QUERY_GIB disk: its map
# (2 bytes a granule, 32 MiB per TiB) no longer stays in the CPU caches.
mk=() mka=()
for ((i = 0; i < repeat; i++)); do
  line=$("$rb" mark . $((query_gib * 1024)) rand "$rand_writes" 4096 $((i + 1)))
  mk+=("$(kv secs "$line")") mka+=("$(kv again "$line")")
done
mmk=$(median "${mk[@]}") mmka=$(median "${mka[@]}")
marks+=("$(printf '| 4 KiB random × %s over %s GiB | %s | %s | %s |' \
  "$rand_writes" "$query_gib" \
  "$(f1 "$(calc "$mmk * 1000000000 / $rand_writes")")" \
  "$(f1 "$(calc "$mmka * 1000000000 / $rand_writes")")" \
  "$(printf '%.2f %%' "$(calc "$mmka / $off4k * 100")")")")
rm -f mark.rct mark.mrt

rand_mib=$((rand_writes * 4096 >> 20))
echo "memcpy (user space): ${rand_mib} MiB $(f3 "$(kv secs "$("$rb" memcpy "$rand_mib")")") s, ${seq_mib} MiB $(f3 "$(kv secs "$("$rb" memcpy "$seq_mib")")") s"
echo
echo "Time per write (µs), writes + the final flush; medians of $repeat. Ratios: of the medians (median of the per-run pairs); CPU time (user + system) of the same runs: median of the per-run pairs."
echo
echo "| writes | raw pwrite (floor) | tm_vhdx | vdisk, tracking off | vdisk, tracking on | on vs off | on vs off, CPU time | off vs tm_vhdx | on vs tm_vhdx | tm_vhdx vs raw |"
echo "|---|---|---|---|---|---|---|---|---|---|"
printf '%s\n' "${rows[@]}"
echo
echo "tm_rct_mark alone, same sequences (ns per call): first pass on a fresh .mrt (one sector write + flush per 1 GiB region, first touches of the map's pages), again (all that done), and the first pass (last row: again) as a share of the tracking-off time of the 4 KiB or 1 MiB runs"
echo
echo "| writes | mark ns | again ns | share of 'off' |"
echo "|---|---|---|---|"
printf '%s\n' "${marks[@]}"
echo

line=$("$rb" query q.vhdx "$query_gib" "$query_changes" "$query_repeat" 4096)
echo "query: ${query_gib} GiB dynamic VHDX, $(kv changes "$line") changed extents of $(($(kv gran "$line") >> 10)) KiB; making them (discards): $(f3 "$(kv mark "$line")") s ($(kv us_per_change "$line") µs each)"
echo "query: full paging loop, ranges[4096], $(kv calls "$line") calls: median $(f3 "$(kv median "$line")") s of $query_repeat ($(kv q "$line")); since the last ID (nothing changed): $(f3 "$(kv empty "$line")") s; close (persist) $(f3 "$(kv close "$line")") s"
rm -f q.vhdx q.vhdx.rct q.vhdx.mrt
echo

echo "| disk | changes | max RSS (time -v) | RSS with changes marked | peak per TiB | marked per TiB | tm_rct_get_info memory per TiB | peak phase |"
echo "|---|---|---|---|---|---|---|---|"
for g in $mem_gib; do
  changes=$((query_changes * g / 1024))
  [[ $changes -lt 1 ]] && changes=1
  out=$( /usr/bin/time -v "$rb" memory m.vhdx "$g" "$changes" 2>&1 )
  line=$(grep -m1 'hwm_kib' <<<"$out")
  maxrss=$(sed -n 's/.*Maximum resident set size (kbytes): //p' <<<"$out")
  base=$(kv start_hwm_kib "$line")
  marked=$(kv marked_rss_kib "$line")
  info=$(kv memory "$("$rb" rctinfo "$g")")
  # The phase after which VmHWM first reached its maximum.
  peak_phase=$(tr ' ' '\n' <<<"$line" | sed -n 's/_hwm_kib=/ /p' |
    awk -v m="$maxrss" '$2 + 64 >= m {print $1; exit}')
  tib=$(calc "$g / 1024")
  printf '| %s GiB | %s | %s MiB | %s MiB | **%s MiB** | %s MiB | %s MiB | after %s |\n' \
    "$g" "$changes" "$(f1 "$(calc "$maxrss / 1024")")" \
    "$(f1 "$(calc "$marked / 1024")")" \
    "$(f1 "$(calc "($maxrss - $base) / 1024 / $tib")")" \
    "$(f1 "$(calc "($marked - $base) / 1024 / $tib")")" \
    "$(f1 "$(calc "$info / 1048576 / $tib")")" "$peak_phase"
  echo "memory $g GiB phases (KiB): $line" >&2
  rm -f m.vhdx m.vhdx.rct m.vhdx.mrt
done
