#!/usr/bin/env bash
# fuzz.sh BUILD SECONDS - runs every libFuzzer target built in BUILD for
# SECONDS each, seeded from tests/corpus/<target> (new inputs go to a
# scratch directory, not into the tree).  Fails if any target crashes.
set -euo pipefail
build=$1
secs=$2
top=$(cd "$(dirname "$0")/.." && pwd)
scratch=$(mktemp -d)
trap 'rm -rf "$scratch"' EXIT
status=0
for fz in $(find "$build" -maxdepth 1 -type f -name '*_fuzz' -perm -u+x | sort); do
  name=$(basename "$fz" _fuzz)
  mkdir -p "$scratch/$name"
  seeds=()
  [ -d "$top/tests/corpus/$name" ] && seeds+=("$top/tests/corpus/$name")
  echo "fuzz: $name for ${secs}s"
  if ! "$fz" -max_total_time="$secs" -rss_limit_mb=2048 -max_len=4194304 \
      -artifact_prefix="$scratch/$name-" "$scratch/$name" "${seeds[@]}" \
      >"$scratch/$name.log" 2>&1; then
    echo "fuzz: $name FAILED"; tail -40 "$scratch/$name.log"
    mkdir -p "$top/fuzz-artifacts"; cp "$scratch/$name"-* "$top/fuzz-artifacts/" 2>/dev/null || true
    status=1
  else
    grep -E '^Done|stat::number_of_executed_units' "$scratch/$name.log" | tail -1 || true
  fi
done
exit $status
