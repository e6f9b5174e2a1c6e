#!/usr/bin/env bash
# cold_start_targets.sh: issue 15's cold-start targets, as ratios measured in
# one session on one machine (docs/performance.md, "Cold starts off the
# loop"). Root only; installs nothing (needs hyperfine, bubblewrap, jq).
#
#   tests/bench/cold_start_targets.sh [--build DIR] [--out DIR] [--keys N]
#
# In this order, each after the CPUs have been quiet for 5 s:
#   1. spawn_bench: posix_spawn, sandbox/default-sandbox (CLONE_VM) and
#      sandbox/default-sandbox/fork-mode, repetitions interleaved;
#   2. hyperfine -N: bwrap --ro-bind / / --dev /dev --proc /proc --tmpfs /tmp
#      --unshare-all /bin/true (the issue's command);
#   3. run_load.sh with pl-notify-min (READY=1 and nothing else), the default
#      sandbox: --keys (default 300) cold launches one at a time, then as many
#      with 4 clients (load_driver's --live level);
#   4. run_load.sh with the built echo and a session pool of 4 for namespace
#      bench-pool: 2,000 warm reuses of one key back to back, 200 more 50 ms
#      apart, then 200 SESSION launches of that tenant one at a time, 50 ms
#      apart (each claims a pooled process; the pause lets the pool refill).
# Prints, and writes to --out/summary.md:
#   cold p50 / spawn_bench default-sandbox median   (target <= 1.5)
#   cold p50 / bwrap median                         (target <= 1.0)
#   launches/s with 4 clients / one at a time       (target >= 1.8)
#   SESSION launch from the pool p50 / warm reuse p50 (target <= 3)
set -euo pipefail

build="${BUILD_DIR:-build}"
out=""
keys=300
while [[ $# -gt 0 ]]; do
    case "$1" in
        --build) build="$2"; shift 2 ;;
        --out) out="$2"; shift 2 ;;
        --keys) keys="$2"; shift 2 ;;
        -h|--help) sed -n '2,25p' "$0"; exit 0 ;;
        *) echo "cold_start_targets.sh: unknown option $1 (see --help)" >&2; exit 2 ;;
    esac
done
[[ $EUID -eq 0 ]] || { echo "cold_start_targets.sh: needs root" >&2; exit 2; }
for tool in hyperfine bwrap jq; do
    command -v "$tool" > /dev/null || {
        echo "cold_start_targets.sh: $tool missing: apt-get install -y hyperfine bubblewrap jq" >&2
        exit 2
    }
done
here="$(cd "$(dirname "$0")" && pwd)"
notify_min="$build/tests/bench/pl-notify-min"
for f in "$build/tests/bench/spawn_bench" "$notify_min" "$build/src/pattern-launcher"; do
    [[ -x "$f" ]] || { echo "cold_start_targets.sh: $f not built" >&2; exit 2; }
done
[[ -n "$out" ]] || out="$(mktemp -d /tmp/pl-targets.XXXXXX)"
mkdir -p "$out"

# Waits (at most 5 min) until the CPUs were under 10 % busy for 5 s.
quiet() {
    local deadline=$((SECONDS + 300)) a b busy
    while ((SECONDS < deadline)); do
        read -r _ a1 a2 a3 a4 a5 a6 a7 _ < /proc/stat
        sleep 5
        read -r _ b1 b2 b3 b4 b5 b6 b7 _ < /proc/stat
        a=$((a1 + a2 + a3 + a4 + a5 + a6 + a7)); b=$((b1 + b2 + b3 + b4 + b5 + b6 + b7))
        busy=$(( (b - a - (b4 - a4) - (b5 - a5)) * 100 / (b - a + 1) ))
        ((busy < 10)) && return 0
    done
    echo "cold_start_targets.sh: the machine did not get quiet; measuring anyway" >&2
}

quiet
"$build/tests/bench/spawn_bench" --benchmark_enable_random_interleaving=true \
    --benchmark_repetitions=10 \
    --benchmark_filter='^(posix_spawn|sandbox/default-sandbox/real|sandbox/default-sandbox/fork-mode)' \
    --benchmark_out="$out/spawn_bench.json" --benchmark_out_format=json > "$out/spawn_bench.txt" 2>&1
median() {  # spawn_bench median of $1, in ms
    jq -r --arg n "$1" \
        '.benchmarks[] | select(.name == $n + "/real_time_median") | .real_time / 1000 * 1000 | round / 1000' \
        "$out/spawn_bench.json"
}
spawn_default=$(median sandbox/default-sandbox)
spawn_fork=$(median sandbox/default-sandbox/fork-mode)
spawn_posix=$(median posix_spawn)

quiet
hyperfine -N --warmup 20 --min-runs 200 --export-json "$out/bwrap.json" \
    'bwrap --ro-bind / / --dev /dev --proc /proc --tmpfs /tmp --unshare-all /bin/true' \
    > "$out/bwrap.txt" 2>&1
bwrap_ms=$(jq -r '.results[0].median * 1000000 | round / 1000' "$out/bwrap.json")

quiet
"$here/run_load.sh" --build "$build" --executable "$notify_min" --runtime-base /dev/shm -- \
    --cold "$keys" --warm 0 --health-calls 0 --live "$keys" --level-cold 0 --idle-window 3 \
    --json "$out/load.json" > "$out/load.txt" 2>&1
cold_ms=$(jq -r '.latency["cold launch, sequential"].p50_us | round / 1000' "$out/load.json")
seq_rate=$(jq -r '.cold_launches_per_s.sequential' "$out/load.json")
c4_rate=$(jq -r '.cold_launches_per_s.concurrent' "$out/load.json")

quiet
"$here/run_load.sh" --build "$build" --runtime-base /dev/shm --session-pool 4 -- \
    --cold 0 --warm 2000 --health-calls 0 --live "" --session-pool 200 --session-gap-ms 50 \
    --json "$out/pool.json" > "$out/pool.txt" 2>&1
pool_ms=$(jq -r '.latency["session launch, sequential"].p50_us | round / 1000' "$out/pool.json")
reuse_ms=$(jq -r '.latency["warm reuse, sequential"].p50_us | round / 1000' "$out/pool.json")
gap_reuse_ms=$(jq -r '.latency["warm reuse, 50 ms apart"].p50_us | round / 1000' "$out/pool.json")
claimed=$(sed -n 's/^run_load.sh: session launches that claimed a pooled process: //p' "$out/pool.txt")

ratio() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.2f", a / b }'; }
{
    echo "| Measure | Value | Ratio | Target |"
    echo "|---|---:|---:|---:|"
    echo "| spawn_bench posix_spawn, median | ${spawn_posix} ms | | |"
    echo "| spawn_bench default-sandbox (CLONE_VM), median | ${spawn_default} ms | | |"
    echo "| spawn_bench default-sandbox/fork-mode, median | ${spawn_fork} ms | $(ratio "$spawn_fork" "$spawn_default") x CLONE_VM | |"
    echo "| bwrap --unshare-all /bin/true, median | ${bwrap_ms} ms | | |"
    echo "| cold launch to RUNNING, one at a time, p50 | ${cold_ms} ms | $(ratio "$cold_ms" "$spawn_default") x spawn_bench | <= 1.5 |"
    echo "| the same | | $(ratio "$cold_ms" "$bwrap_ms") x bwrap | <= 1.0 |"
    echo "| cold launches/s: one at a time; 4 clients | ${seq_rate}; ${c4_rate} | $(ratio "$c4_rate" "$seq_rate") | >= 1.8 |"
    echo "| warm reuse (echo), p50: back to back; 50 ms apart | ${reuse_ms}; ${gap_reuse_ms} ms | | |"
    echo "| SESSION launch from the pool, 50 ms apart, p50 (${claimed} of 200 claimed) | ${pool_ms} ms | $(ratio "$pool_ms" "$reuse_ms") x warm reuse back to back | <= 3 |"
    echo "| the same | | $(ratio "$pool_ms" "$gap_reuse_ms") x warm reuse 50 ms apart | <= 3 |"
} | tee "$out/summary.md"
echo "cold_start_targets.sh: results in $out"
