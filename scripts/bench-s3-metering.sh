#!/usr/bin/env bash
# Benchmarks the S3 usage estimate's access-log reader (AWS's line format parsed, summed per (bucket,
# hour): the code the metering job runs on each log object) on a generated hour of 1 million requests
# over 1 000 buckets, next to `wc -l` on the same file, and reports peak RSS (/usr/bin/time -v). Best of
# 3 runs. Release build (cargo bench builds with the bench profile = release).
# Usage: scripts/bench-s3-metering.sh [dir] [requests]   (the generated file is kept; default target/s3-metering-bench)
set -euo pipefail
cd "$(dirname "$0")/.."
dir="${1:-${CARGO_TARGET_DIR:-target}/s3-metering-bench}"
requests="${2:-1000000}"
mkdir -p "$dir"
bin=$(cargo bench --bench s3_metering --no-run 2>&1 | sed -n 's/.*Executable .*(\(.*\))$/\1/p' | tail -1)
[ -x "$bin" ] || { echo "bench binary not found" >&2; exit 1; }
f="$dir/hour-${requests}.log"
[ -f "$f" ] || "$bin" generate "$f" "$requests" >&2
cat "$f" > /dev/null   # page cache
mb=$(awk -v b="$(wc -c <"$f")" 'BEGIN { printf "%.1f", b / 1e6 }')
wc=$(for _ in 1 2 3; do /usr/bin/time -f %e wc -l "$f" 2>&1 >/dev/null; done | sort -n | head -1)
best=""; rss=0; line=""
for _ in 1 2 3; do
  out=$(/usr/bin/time -v "$bin" parse "$f" 2>&1)
  s=$(sed -n 's/^metering parse: \([0-9.]*\) s.*/\1/p' <<<"$out")
  r=$(sed -n 's/.*Maximum resident set size (kbytes): //p' <<<"$out")
  [ "$r" -gt "$rss" ] && rss=$r
  if [ -z "$best" ] || awk -v a="$s" -v b="$best" 'BEGIN { exit !(a < b) }'; then best=$s; line=$(grep '^metering parse' <<<"$out"); fi
done
echo "file: $f ($requests lines, $mb MB); wc -l: ${wc} s"
echo "$line"
awk -v rss="$rss" 'BEGIN { printf "peak RSS: %.1f MB\n", rss / 1024 }'
