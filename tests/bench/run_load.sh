#!/usr/bin/env bash
# run_load.sh: starts a private pattern-launcher, runs load_driver against it,
# and removes everything again. Root only (cgroups, namespaces).
#
#   tests/bench/run_load.sh [options] [-- load_driver options]
#
#   --build DIR        build tree with src/pattern-launcher, patterns/echo/echo and
#                      tests/bench/load_driver (default: $BUILD_DIR or ./build), and
#                      sandbox/init/pattern-launcher-init, the daemon's init_path
#   --sandbox KIND     default (the default): no `sandbox` section, i.e. the default
#                      compartment (only `network: host` with --network host) |
#                      legacy: the section of the numbers measured before it,
#                      {network, seccomp: default, namespaces: [mount, ipc, uts],
#                      capabilities: []}: today that still has the file view and
#                      the own uid, but no pid namespace, init nor cgroup namespace
#   --network MODE     isolated (own network namespace per pattern, the default) | host
#   --no-limits        leave resources: out of the manifest (no limit writes at all)
#   --executable PATH  the pattern's binary instead of the built echo (any program
#                      that sends READY=1 to $NOTIFY_SOCKET), to separate the
#                      launcher's cost from echo's own startup
#   --ports FIRST-LAST pattern_ports (default 20000-44999)
#   --runtime-base DIR where the private directory goes (default /tmp; the daemon's
#                      runtime_dir, with its per-process state records, lives in it:
#                      use a tmpfs such as /dev/shm to match /run on a systemd host)
#   --warm-pool N      the config keeps the first N keys of load_driver's sequential
#                      cold phase (ns:bench-s<i>:echo-notify) running in a warm pool,
#                      and the driver starts once they all run: its "cold" phase then
#                      measures pool hits (needs the driver's default --prefix)
#   --session-pool N   the manifest declares late_binding and keeps N processes ready
#                      for SESSION keys of namespace bench-pool (warm_pool.sessions);
#                      the driver starts once they are ready, and its --session-pool
#                      phase claims them (the pattern must speak the claim protocol:
#                      the built echo does; needs the driver's default --prefix)
#   --start-timeout D  the manifest's healthcheck.start_timeout (default 10s; a slow
#                      guest under software emulation needs more)
#   --keep-log FILE    copy the daemon's log to FILE
#   --wrap "CMD ..."   run the daemon under CMD, e.g. "valgrind --tool=callgrind
#                      --callgrind-out-file=/tmp/cg.out" or "strace -f -tt -T -o /tmp/st"
#
# What it sets up, all below a fresh <runtime-base>/pl-load.<pid>/:
#   patterns/echo-notify/manifest.yaml   the echo example with healthcheck: notify,
#                                        executable: the built echo (absolute path)
#   config.yaml                          runtime_dir and api socket in that directory,
#                                        cgroup_root <cgroup2 mount>/pl-load.<pid>,
#                                        limits_enforcement: warn
# The daemon gets RLIMIT_NOFILE raised as far as this shell may (each live key
# holds about five descriptors in the daemon). On exit (also on Ctrl-C) the
# daemon gets SIGTERM (it terminates every pattern), SIGKILL after 120 s, then
# anything left in the private cgroup subtree is killed and the subtree removed.
set -euo pipefail

build="${BUILD_DIR:-build}"
sandbox=default
network=isolated
limits=1
executable=
ports=20000-44999
runtime_base=/tmp
keep_log=
wrap=
warm_pool=0
session_pool=0
start_timeout=10s
while [[ $# -gt 0 ]]; do
    case "$1" in
        --build) build="$2"; shift 2 ;;
        --sandbox) sandbox="$2"; shift 2 ;;
        --network) network="$2"; shift 2 ;;
        --no-limits) limits=0; shift ;;
        --executable) executable="$2"; shift 2 ;;
        --ports) ports="$2"; shift 2 ;;
        --runtime-base) runtime_base="$2"; shift 2 ;;
        --keep-log) keep_log="$2"; shift 2 ;;
        --warm-pool) warm_pool="$2"; shift 2 ;;
        --session-pool) session_pool="$2"; shift 2 ;;
        --wrap) wrap="$2"; shift 2 ;;
        --start-timeout) start_timeout="$2"; shift 2 ;;
        --) shift; break ;;
        -h|--help) sed -n '2,49p' "$0"; exit 0 ;;
        *) echo "run_load.sh: unknown option $1 (see --help)" >&2; exit 2 ;;
    esac
done
case "$sandbox" in default|legacy) ;; *) echo "run_load.sh: --sandbox default|legacy" >&2; exit 2 ;; esac
case "$network" in isolated|host) ;; *) echo "run_load.sh: --network isolated|host" >&2; exit 2 ;; esac
[[ "$ports" =~ ^([0-9]+)-([0-9]+)$ ]] || { echo "run_load.sh: --ports FIRST-LAST" >&2; exit 2; }
port_first="${BASH_REMATCH[1]}"
port_last="${BASH_REMATCH[2]}"
[[ $(id -u) -eq 0 ]] || { echo "run_load.sh: needs root (cgroups, namespaces)" >&2; exit 2; }

build="$(cd "$build" && pwd)"
launcher="$build/src/pattern-launcher"
echo_bin="$build/patterns/echo/echo"
driver="$build/tests/bench/load_driver"
init="$build/sandbox/init/pattern-launcher-init"
for f in "$launcher" "$echo_bin" "$driver" "$init"; do
    [[ -x "$f" ]] || { echo "run_load.sh: $f is missing; build the targets pattern-launcher echo load_driver pattern-launcher-init" >&2; exit 2; }
done
if [[ -n "$executable" ]]; then
    [[ -x "$executable" ]] || { echo "run_load.sh: --executable $executable is not executable" >&2; exit 2; }
    echo_bin="$(cd "$(dirname "$executable")" && pwd)/$(basename "$executable")"
fi

cgroup2="$(awk '$3 == "cgroup2" { print $2; exit }' /proc/mounts)"
[[ -n "$cgroup2" ]] || { echo "run_load.sh: no cgroup2 mount" >&2; exit 2; }

[[ -d "$runtime_base" ]] || { echo "run_load.sh: no directory $runtime_base" >&2; exit 2; }
dir="$(cd "$runtime_base" && pwd)/pl-load.$$"
cgroup_root="$cgroup2/pl-load.$$"
socket="$dir/run/api.sock"
daemon_pid=
driver_pid=

# Kills what is left in our own subtree (never anything else) and removes it.
remove_cgroup_root() {
    [[ -d "$cgroup_root" ]] || return 0
    echo 1 > "$cgroup_root/cgroup.kill" 2>/dev/null || true
    for _ in $(seq 1 100); do
        # Deepest first; rmdir fails while a group is still populated.
        find "$cgroup_root" -depth -type d -exec rmdir {} + 2>/dev/null || true
        [[ -d "$cgroup_root" ]] || return 0
        sleep 0.1
    done
    echo "run_load.sh: could not remove $cgroup_root" >&2
}

cleanup() {
    local rc=$?
    trap - EXIT INT TERM
    if [[ -n "$driver_pid" ]] && kill -0 "$driver_pid" 2>/dev/null; then
        kill -TERM "$driver_pid" 2>/dev/null || true
        wait "$driver_pid" 2>/dev/null || true
    fi
    if [[ -n "$daemon_pid" ]] && kill -0 "$daemon_pid" 2>/dev/null; then
        local keys_left stopping_since
        keys_left=$(find "$cgroup_root" -mindepth 1 -maxdepth 2 -type d -name '*:*:*' 2>/dev/null | wc -l)
        stopping_since=$(date +%s.%N)
        kill -TERM "$daemon_pid" 2>/dev/null || true
        for _ in $(seq 1 12000); do
            kill -0 "$daemon_pid" 2>/dev/null || break
            sleep 0.01
        done
        # The daemon's shutdown stops every key in parallel, each with its
        # grace period: the terminate-all of an operator (load_driver --leave-keys).
        echo "run_load.sh: the daemon's shutdown with $keys_left key group(s) took" \
             "$(awk -v a="$stopping_since" -v b="$(date +%s.%N)" 'BEGIN { printf "%.2f", b - a }') s" >&2
        if kill -0 "$daemon_pid" 2>/dev/null; then
            echo "run_load.sh: the daemon ignored SIGTERM for 120 s; killing it" >&2
            kill -KILL "$daemon_pid" 2>/dev/null || true
        fi
        wait "$daemon_pid" 2>/dev/null || true
    fi
    remove_cgroup_root
    if [[ -n "$keep_log" && -f "$dir/launcher.log" ]]; then cp "$dir/launcher.log" "$keep_log"; fi
    rm -rf "$dir"
    exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

mkdir -p "$dir/patterns/echo-notify" "$dir/run"
{
    echo "# The echo example with notify readiness (or --executable), for load_driver."
    echo "name: echo-notify"
    echo "version: 1.0.0"
    echo "executable: $echo_bin"
    echo "isolation_level: namespace"
    echo "healthcheck:"
    echo "  type: notify"
    echo "  start_timeout: $start_timeout"
    if [[ $limits -eq 1 ]]; then
        echo "resources:"
        echo "  cpu_limit: 0.5"
        echo "  memory_limit: 64Mi"
        echo "  pids_limit: 32"
    fi
    if [[ $sandbox == legacy ]]; then
        echo "sandbox:"
        echo "  network: $network"
        echo "  seccomp: default"
        echo "  namespaces: [mount, ipc, uts]"
        echo "  capabilities: []"
    elif [[ $network == host ]]; then
        echo "sandbox:"
        echo "  network: host"
    fi
    echo "environment:"
    echo "  LOG_LEVEL: info"
    if [[ $session_pool -gt 0 ]]; then
        echo "late_binding: true"
        echo "warm_pool:"
        echo "  sessions: {bench-pool: $session_pool}"
    fi
} > "$dir/patterns/echo-notify/manifest.yaml"
cat > "$dir/config.yaml" <<EOF
launcher:
  grpc_port: 0
  patterns_dir: $dir/patterns
  runtime_dir: $dir/run
  grpc_socket: $socket
  cgroup_root: $cgroup_root
  pattern_ports: {first: $port_first, last: $port_last}
  limits_enforcement: warn
EOF
if [[ $warm_pool -gt 0 ]]; then
    echo "  warm_pool:"
    echo "    tenants:"
    for i in $(seq 0 $((warm_pool - 1))); do echo "      bench-s$i: [echo-notify]"; done
fi >> "$dir/config.yaml"

# Each live key holds about five descriptors in the daemon: raise the limit
# as far as allowed (raising the hard limit needs CAP_SYS_RESOURCE).
ulimit -n 1048576 2>/dev/null || ulimit -n "$(ulimit -Hn)"
echo "run_load.sh: $(uname -r), $(nproc) CPUs, load $(cut -d' ' -f1-3 /proc/loadavg)," \
     "pid_max $(cat /proc/sys/kernel/pid_max), daemon RLIMIT_NOFILE $(ulimit -n)," \
     "pattern $echo_bin, sandbox: $sandbox, network: $network, limits: $([[ $limits -eq 1 ]] && echo manifest || echo none)," \
     "runtime_dir $dir/run ($(stat -f -c %T "$dir")), cgroup root $cgroup_root" >&2

# shellcheck disable=SC2086  # $wrap is a command line on purpose
$wrap "$launcher" --config "$dir/config.yaml" > "$dir/launcher.log" 2>&1 < /dev/null &
daemon_pid=$!
for _ in $(seq 1 300); do
    [[ -S "$socket" ]] && break
    kill -0 "$daemon_pid" 2>/dev/null || { cat "$dir/launcher.log" >&2; exit 1; }
    sleep 0.05
done
[[ -S "$socket" ]] || { echo "run_load.sh: no API socket after 15 s" >&2; cat "$dir/launcher.log" >&2; exit 1; }

if [[ $warm_pool -gt 0 ]]; then
    ctl="$build/src/patternctl"
    up=0
    for _ in $(seq 1 1200); do
        up=$("$ctl" --socket "$socket" list --state running 2>/dev/null | grep -c ':echo-notify' || true)
        [[ $up -ge $warm_pool ]] && break
        sleep 0.1
    done
    [[ $up -ge $warm_pool ]] || { echo "run_load.sh: the warm pool has $up of $warm_pool keys after 120 s" >&2; exit 1; }
    echo "run_load.sh: the warm pool runs its $warm_pool keys" >&2
fi

if [[ $session_pool -gt 0 ]]; then
    # The pool's processes are no client's keys (List does not show them):
    # count their populated cgroups, below ns:bench-pool.
    ready=0
    for _ in $(seq 1 1200); do
        ready=0
        for procs in "$cgroup_root"/ns:bench-pool/pool:*/run.*/cgroup.procs; do
            # (cgroupfs files say size 0: read one, do not test -s)
            [[ -n "$(head -c 1 "$procs" 2>/dev/null)" ]] && ready=$((ready + 1))
        done
        [[ $ready -ge $session_pool ]] && break
        sleep 0.1
    done
    sleep 1  # started, and now also past their readiness check
    [[ $ready -ge $session_pool ]] || { echo "run_load.sh: the session pool has $ready of $session_pool processes after 120 s" >&2; exit 1; }
    echo "run_load.sh: the session pool has its $session_pool processes" >&2
fi

# In the background, so that a signal to this script is handled at once.
rc=0
"$driver" --socket "$socket" --daemon-pid "$daemon_pid" --label "sandbox: $sandbox, network: $network" "$@" &
driver_pid=$!
wait "$driver_pid" || rc=$?
driver_pid=
# The daemon's own complaints, if any (not the per-launch limits warning of
# limits_enforcement: warn, the weakened-confinement line of every start with
# --sandbox legacy, the audit line of every call, nor the patterns' output).
notes="$(grep '^pattern-launcher: ' "$dir/launcher.log" |
         grep -v -e 'launched without some limits' -e 'confinement weakened by its manifest' \
              -e '^pattern-launcher: audit: ' |
         grep -i -e fail -e error -e cannot -e refus -e 'too many' -e warn | tail -n 20 || true)"
if [[ -n "$notes" ]]; then
    echo "run_load.sh: daemon log:" >&2
    echo "$notes" >&2
fi
if [[ $session_pool -gt 0 ]]; then
    echo "run_load.sh: session launches that claimed a pooled process:" \
         "$(grep -c 'from the session pool' "$dir/launcher.log" || true)" >&2
fi
exit "$rc"
