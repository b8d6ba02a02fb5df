#!/usr/bin/env bash
# Research throughput of the binary a user runs (issue 20, item 6), written for BENCHMARKS.md:
#   import  `kestrel journal import-csv`: rows/s and peak RSS, for each size in ROWS;
#   floor   a plain sequential read of the journal's records from the page cache (`dd`),
#           and `kestrel journal inspect` (one pass that counts and tracks gaps);
#   replay  `kestrel replay` with the default config (breakout, the full risk gate, the
#           simulated venue): ticks/s, the same journal, page cache warm;
#   optimize `kestrel optimize` over 8 grid points on the smallest journal, 1 thread and 2.
# Each timing is the best of RUNS (default 3), wall clock, start-up included (what a user waits).
# Usage: cargo build --release -p kestrel && bash benches/research/run.sh
set -euo pipefail
cd "$(dirname "$0")/../.."
K=${KESTREL:-target/release/kestrel}
OUT=${OUT:-target/research}
ROWS=${ROWS:-"1000000 25000000"}
RUNS=${RUNS:-3}
mkdir -p "$OUT"

# best of $RUNS: "<seconds> <peak RSS KB>" (wall time by bash's clock, RSS by GNU time)
best() {
  local b="" t0 t1 r
  for _ in $(seq "$RUNS"); do
    t0=$EPOCHREALTIME
    /usr/bin/time -f '%M' -o "$OUT/t" "$@" >/dev/null 2>"$OUT/err" || { cat "$OUT/err" >&2; exit 1; }
    t1=$EPOCHREALTIME
    r="$(awk -v a="$t0" -v b="$t1" 'BEGIN{printf "%.4f", b-a}') $(tail -1 "$OUT/t")"
    if [ -z "$b" ] || awk -v a="${r%% *}" -v c="${b%% *}" 'BEGIN{exit !(a<c)}'; then b=$r; fi
  done
  echo "$b"
}
rate() { awk -v n="$1" -v s="$2" 'BEGIN{printf "%.2f M/s", n/s/1e6}'; }

echo "machine: $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs) × $(nproc), $(uname -r); kestrel $(git rev-parse --short HEAD)"
for n in $ROWS; do
  csv="$OUT/ticks-$n.csv"; j="$OUT/ticks-$n.kjnl"
  [ -s "$csv" ] || python3 benches/research/gen_ticks.py "$n" > "$csv"
  imp() { rm -f "$j"; "$K" journal import-csv "$csv" --out "$j"; }
  read -r s rss < <(best bash -c "$(declare -f imp); K=$K csv=$csv j=$j imp")
  echo "import   $n rows: ${s} s, $(rate "$n" "$s") rows, peak RSS $((rss / 1024)) MiB ($(du -h "$csv" | cut -f1) CSV)"
  # The journal's space is allocated ahead: read only the records' bytes (64 each).
  read -r s _ < <(best dd if="$j" of=/dev/null bs=4M count=$((n * 64)) iflag=count_bytes status=none)
  echo "floor    $n ticks: dd ${s} s, $(rate "$n" "$s") records ($((n * 64 / 1048576)) MiB of records)"
  read -r s _ < <(best "$K" journal inspect "$j")
  echo "inspect  $n ticks: ${s} s, $(rate "$n" "$s") records"
  read -r s rss < <(best "$K" replay "$j")
  echo "replay   $n ticks: ${s} s, $(rate "$n" "$s") ticks, peak RSS $((rss / 1024)) MiB"
done
n=${ROWS%% *}; j="$OUT/ticks-$n.kjnl"
for threads in 1 2; do
  read -r s _ < <(best "$K" optimize "$j" --param lookback=10..40:10 --param stop_bps=50,100 --threads "$threads" --metric net_pnl)
  echo "optimize 8 runs over $n ticks, $threads thread(s): ${s} s, $(awk -v s="$s" 'BEGIN{printf "%.2f", 8/s}') runs/s"
done
