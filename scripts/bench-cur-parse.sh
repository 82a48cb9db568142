#!/usr/bin/env bash
# Benchmarks the cost import's CUR 2.0 parser (gunzip + CSV + exact sums per purchase and day, the code
# the import runs on each S3 part) against `gzip -dc FILE > /dev/null` on the same files, at 100 MB and
# 1 GB uncompressed, and reports peak RSS (/usr/bin/time -v). Best of 3 runs each. Release build.
# Usage: scripts/bench-cur-parse.sh [dir]   (generated files are kept in dir; default target/cur-bench)
set -euo pipefail
cd "$(dirname "$0")/.."
dir="${1:-target/cur-bench}"
mkdir -p "$dir"
bin=$(cargo bench --bench cur_parse --no-run 2>&1 | sed -n 's/.*Executable .*(\(.*\))$/\1/p' | tail -1)
[ -x "$bin" ] || { echo "bench binary not found" >&2; exit 1; }

best() { sort -n | head -1; }

printf '%-8s %10s %12s %12s %12s %12s %8s %12s\n' size "MB" "gzip -dc s" "gzip MB/s" "import s" "import MB/s" "ratio" "peak RSS MB"
for mb in 100 1000; do
  f="$dir/cur-${mb}MB.csv.gz"
  [ -f "$f" ] || "$bin" generate "$f" "$mb" >&2
  cat "$f" > /dev/null   # page cache
  bytes=$(gzip -dc "$f" | wc -c)
  gz=$(for _ in 1 2 3; do /usr/bin/time -f %e gzip -dc "$f" 2>&1 >/dev/null; done | best)
  runs=()
  rss=0
  for _ in 1 2 3; do
    out=$(/usr/bin/time -v "$bin" parse "$f" 2>&1)
    runs+=("$(sed -n 's/^import parse: \([0-9.]*\) s.*/\1/p' <<<"$out")")
    r=$(sed -n 's/.*Maximum resident set size (kbytes): //p' <<<"$out")
    [ "$r" -gt "$rss" ] && rss=$r
  done
  imp=$(printf '%s\n' "${runs[@]}" | best)
  awk -v mb="$mb" -v bytes="$bytes" -v gz="$gz" -v imp="$imp" -v rss="$rss" 'BEGIN {
    m = bytes / 1e6;
    printf "%-8s %10.1f %12.2f %12.1f %12.2f %12.1f %7.0f%% %12.1f\n", mb "MB", m, gz, m / gz, imp, m / imp, 100 * gz / imp, rss / 1024
  }'
done
