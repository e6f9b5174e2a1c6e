#!/usr/bin/env bash
# compare_bwrap.sh: the launcher's default-sandbox spawn next to bubblewrap, in
# one hyperfine session, then spawn_bench's plain and default-sandbox variants.
# Root only (cgroups, namespaces). Installs nothing.
#
#   tests/bench/compare_bwrap.sh [options]
#
#   --build DIR       build tree with tests/bench/pl-spawn-once and tests/bench/spawn_bench
#                     (default: $BUILD_DIR or ./build)
#   --out DIR         where results go (default: a new /tmp/pl-compare.XXXXXX)
#   --rounds N        hyperfine sessions, one after the other (default 6): the spread
#                     between them shows how noisy the machine was
#   --runs N          runs per command and session (default 200)
#   --warmup N        warmup runs per command and session (default 20)
#   --quiet-below P   before each session wait (at most 10 min) until the CPUs have
#                     been under P % busy for 5 s (default 10; 0: do not wait)
#   --no-bench        skip spawn_bench
#
# One hyperfine session (-N: no shell) runs these, /bin/true first and the other
# three in an order rotated from session to session (hyperfine runs each
# command's runs back to back, and what one leaves behind, e.g. network
# namespaces a kernel worker is still tearing down, slows the next):
#   true               /bin/true: process start and wait, the baseline
#   bwrap              bwrap --ro-bind / / --dev /dev --proc /proc --tmpfs /tmp
#                      --unshare-all --die-with-parent /bin/true
#   pl-spawn-once      one spawn of /bin/true in the launcher's default compartment
#                      (tests/bench/default_sandbox.h) and its reap
#   pl-spawn-once --setup-only
#                      the same without the spawn: what the daemon does once at start
#                      (init fd, report sockets, Landlock ruleset, seccomp compile)
# and writes round-N.md (hyperfine's markdown) and round-N.json. Then spawn_bench
# runs posix_spawn, sandbox/lifecycle and sandbox/default-sandbox* in one
# process, their repetitions interleaved (bench.json). summary.md gives every
# session's medians, each as a ratio to `true` of the same session, and
# spawn_bench's medians as ratios to posix_spawn.
# See docs/performance.md, "Spawning with the default sandbox".
set -euo pipefail

build="${BUILD_DIR:-build}"
out=
rounds=6
runs=200
warmup=20
quiet_below=10
bench=1
while [[ $# -gt 0 ]]; do
    case "$1" in
        --build) build="$2"; shift 2 ;;
        --out) out="$2"; shift 2 ;;
        --rounds) rounds="$2"; shift 2 ;;
        --runs) runs="$2"; shift 2 ;;
        --warmup) warmup="$2"; shift 2 ;;
        --quiet-below) quiet_below="$2"; shift 2 ;;
        --no-bench) bench=0; shift ;;
        -h|--help) sed -n '2,/^set -e/{/^set -e/d;s/^# \{0,1\}//;p;}' "$0"; exit 0 ;;
        *) echo "compare_bwrap.sh: unknown option $1 (see --help)" >&2; exit 2 ;;
    esac
done

missing=()
for tool in bwrap hyperfine python3; do
    command -v "$tool" >/dev/null || missing+=("$tool")
done
if [[ ${#missing[@]} -gt 0 ]]; then
    echo "compare_bwrap.sh: missing ${missing[*]}; on Debian: apt-get install -y bubblewrap hyperfine python3" >&2
    exit 2
fi
[[ $(id -u) -eq 0 ]] || { echo "compare_bwrap.sh: needs root (cgroups, namespaces)" >&2; exit 2; }
build="$(cd "$build" && pwd)"
once="$build/tests/bench/pl-spawn-once"
spawn_bench="$build/tests/bench/spawn_bench"
for f in "$once" "$spawn_bench"; do
    [[ -x "$f" ]] || {
        echo "compare_bwrap.sh: $f is missing; build it: cmake --build $build --target pl-spawn-once spawn_bench pattern-launcher-init" >&2
        exit 2
    }
done
# A broken sandbox would make pl-spawn-once fast and wrong: check it first.
if ! "$once" >/dev/null; then
    echo "compare_bwrap.sh: $once failed" >&2
    exit 1
fi
if [[ -z "$out" ]]; then
    out="$(mktemp -d /tmp/pl-compare.XXXXXX)"
else
    mkdir -p "$out"
fi

bwrap_cmd="bwrap --ro-bind / / --dev /dev --proc /proc --tmpfs /tmp --unshare-all --die-with-parent /bin/true"

# Share of all CPUs busy over one second, from /proc/stat.
cpu_busy() {
    local a b
    read -r -a a < <(head -1 /proc/stat)
    sleep 1
    read -r -a b < <(head -1 /proc/stat)
    local total=0 idle i
    for i in 1 2 3 4 5 6 7 8; do total=$((total + b[i] - a[i])); done
    idle=$((b[4] - a[4] + b[5] - a[5]))
    echo $(((100 * (total - idle)) / (total > 0 ? total : 1)))
}

wait_quiet() {
    [[ "$quiet_below" -gt 0 ]] || return 0
    local quiet=0 waited=0 busy
    while [[ $quiet -lt 5 ]]; do
        busy=$(cpu_busy)
        waited=$((waited + 1))
        if [[ $busy -lt $quiet_below ]]; then quiet=$((quiet + 1)); else quiet=0; fi
        if [[ $waited -ge 600 ]]; then
            echo "compare_bwrap.sh: CPUs still ${busy} % busy after 10 min; measuring anyway" >&2
            return 0
        fi
    done
}

{
    echo "date: $(date -u +%Y-%m-%dT%H:%M:%SZ)"
    echo "kernel: $(uname -r)"
    echo "cpus: $(nproc) x $(sed -n 's/^model name[[:space:]]*: //p' /proc/cpuinfo | head -1)"
    echo "hyperfine: $(hyperfine --version)"
    echo "bwrap: $(bwrap --version)"
    echo "build: $build (CMAKE_BUILD_TYPE=$(sed -n 's/^CMAKE_BUILD_TYPE:STRING=//p' "$build/CMakeCache.txt"); empty: the project default, RelWithDebInfo)"
    echo "commit: $(git -C "$(dirname "$0")" describe --always --dirty 2>/dev/null || echo unknown)"
} | tee "$out/machine.txt"

names=(bwrap pl-spawn-once "pl-spawn-once --setup-only")
commands=("$bwrap_cmd" "$once" "$once --setup-only")
for round in $(seq 1 "$rounds"); do
    wait_quiet
    args=(-n true /bin/true)
    for i in 0 1 2; do
        k=$(((i + round - 1) % 3))
        args+=(-n "${names[$k]}" "${commands[$k]}")
    done
    echo "== hyperfine session $round of $rounds (load: $(cut -d' ' -f1-3 /proc/loadavg))"
    hyperfine -N --warmup "$warmup" --runs "$runs" --time-unit millisecond \
        --export-markdown "$out/round-$round.md" --export-json "$out/round-$round.json" "${args[@]}"
done

if [[ $bench -eq 1 ]]; then
    wait_quiet
    echo "== spawn_bench (load: $(cut -d' ' -f1-3 /proc/loadavg))"
    # Interleaved: a burst of someone else's load then hits every variant a
    # little instead of one variant's whole block of repetitions.
    "$spawn_bench" --benchmark_filter='^(posix_spawn|sandbox/lifecycle|sandbox/default-sandbox)' \
        --benchmark_enable_random_interleaving=true \
        --benchmark_out="$out/bench.json" --benchmark_out_format=json
fi

python3 - "$out" "$rounds" "$bench" <<'EOF' | tee "$out/summary.md"
import json, sys
out, rounds, bench = sys.argv[1], int(sys.argv[2]), sys.argv[3] == "1"
names = ["true", "bwrap", "pl-spawn-once", "pl-spawn-once --setup-only"]
rows = {n: [] for n in names}
for r in range(1, rounds + 1):
    with open(f"{out}/round-{r}.json") as f:
        results = {x["command"]: x for x in json.load(f)["results"]}
    for n in names:
        rows[n].append((results[n]["median"] * 1e3, results[n]["median"] / results["true"]["median"]))
median = lambda v: sorted(v)[len(v) // 2] if len(v) % 2 else sum(sorted(v)[len(v) // 2 - 1:len(v) // 2 + 1]) / 2
print("hyperfine medians per session (ms, and x the session's /bin/true):\n")
print("| Command | " + " | ".join(f"session {r}" for r in range(1, rounds + 1)) + " | median of sessions |")
print("|---|" + "---:|" * (rounds + 1))
for n in names:
    ms = [m for m, _ in rows[n]]
    xs = [x for _, x in rows[n]]
    print(f"| `{n}` | " + " | ".join(f"{m:.2f} ms ({x:.2f}x)" for m, x in rows[n]) +
          f" | {median(ms):.2f} ms ({median(xs):.2f}x) |")
ratio = [a[0] / b[0] for a, b in zip(rows["pl-spawn-once"], rows["bwrap"])]
spawn_only = [(a[0] - s[0]) / b[0] for a, s, b in
              zip(rows["pl-spawn-once"], rows["pl-spawn-once --setup-only"], rows["bwrap"])]
print("\npl-spawn-once / bwrap per session: " + ", ".join(f"{x:.2f}" for x in ratio) +
      f" (median {median(ratio):.2f})")
print("(pl-spawn-once - its --setup-only) / bwrap per session: " +
      ", ".join(f"{x:.2f}" for x in spawn_only) + f" (median {median(spawn_only):.2f})")
if bench:
    with open(f"{out}/bench.json") as f:
        data = json.load(f)
    med = {b["run_name"]: b for b in data["benchmarks"] if b.get("aggregate_name") == "median"}
    cv = {b["run_name"]: b for b in data["benchmarks"] if b.get("aggregate_name") == "cv"}
    base = med["posix_spawn/real_time"]["real_time"]
    print("\nspawn_bench, one process (median of the repetitions, x posix_spawn):\n")
    print("| Variant | Median | x posix_spawn | CV | Parent CPU |")
    print("|---|---:|---:|---:|---:|")
    order = lambda name: (not name.startswith("posix_spawn"), "default" in name, "without" in name, name)
    for name, b in sorted(med.items(), key=lambda item: order(item[0])):
        c = cv.get(name, {}).get("real_time", 0) * 100
        print(f"| `{name.removesuffix('/real_time')}` | {b['real_time'] / 1e3:.2f} ms | "
              f"{b['real_time'] / base:.2f}x | {c:.1f} % | {b['cpu_time'] / 1e3:.2f} ms |")
EOF
echo "results in $out"
