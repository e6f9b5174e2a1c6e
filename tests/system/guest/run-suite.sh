#!/bin/bash
# The payload's run.sh: runs as root inside the test VM (systemd PID 1, pure
# cgroup v2), from the payload directory that tests/system/run.sh assembled:
#   *.deb       the freshly built package
#   bin/        system_tests, the host suites and the programs they start
#   paths.map   "<path compiled into a host test> <file in the payload>"
#   patterns/   the system suite's test patterns
# Results: out/*.xml (GoogleTest XML, one per suite); the exit code is 0 only
# if the package installed and every suite passed.
set -u
cd "$(dirname "$0")"
mkdir -p out
rc=0

echo "== guest: kernel $(uname -r), $(systemctl --version | head -n 1)"
echo "== boot: $(systemctl is-system-running --wait)"
echo "== cgroup2 controllers: $(cat /sys/fs/cgroup/cgroup.controllers)"

echo "== installing $(ls ./*.deb)"
if ! dpkg -i ./*.deb; then
    echo "FAILED: dpkg -i"
    exit 1
fi
# The package enables and starts the API socket, not the service.
echo "== after install: socket $(systemctl is-active pattern-launcher.socket)," \
    "service $(systemctl is-active pattern-launcher.service)"

# Test patterns go where an operator adds patterns; the service reads them
# at its (socket-activated) start.
for dir in patterns/*/; do
    name=$(basename "$dir")
    install -d "/usr/lib/pattern-launcher/patterns/$name"
    install -m 0644 "$dir/manifest.yaml" "/usr/lib/pattern-launcher/patterns/$name/"
    install -m 0755 bin/pl-misbehave "/usr/lib/pattern-launcher/patterns/$name/"
done

# The host suites find their programs at the paths compiled into them.
while read -r compiled file; do
    mkdir -p "$(dirname "$compiled")"
    ln -sf "$PWD/$file" "$compiled"
done <paths.map

run_suite() {  # NAME ARGS...
    local name=$1 status=0
    shift
    echo "== suite $name"
    "$@" --gtest_output="xml:out/$name.xml" --gtest_color=no || status=$?
    if [ "$status" -ne 0 ]; then
        echo "== suite $name exited with $status"
        rc=1
    fi
}

# PL_VM_LOAD on the host (tests/system/run.sh): a load measurement instead of
# the suites, with the limits this guest may raise (the development host's
# hard RLIMIT_NOFILE of 20,000 caps it at 9,950 keys there).
if [ -s load ]; then
    sysctl -q -w kernel.pid_max=4194304
    echo "+cpu +memory +pids" >/sys/fs/cgroup/cgroup.subtree_control
    # shellcheck disable=SC2046  # the host's arguments, word-split on purpose
    bash bin/run_load.sh --build "$(cat load-build)" --runtime-base /dev/shm $(cat load) \
        >out/load.txt 2>&1 || rc=$?
    cat out/load.txt
    journalctl --no-pager -o short-monotonic >out/journal.txt
    exit "$rc"
fi

# PL_VM_FILTER on the host (tests/system/run.sh) narrows the run to those
# system tests, for working on one of them.
if [ -s filter ]; then
    run_suite system_tests bin/system_tests --gtest_filter="$(cat filter)"
    journalctl --no-pager -o short-monotonic >out/journal.txt
    exit "$rc"
fi
run_suite system_tests bin/system_tests

# The host suites' tests that need memory, cpu and pids on cgroup v2: the
# development host (hybrid layout) skips them. They create their cgroups
# below the mount's root, whose subtree needs the controllers enabled.
echo "+cpu +memory +pids" >/sys/fs/cgroup/cgroup.subtree_control
sandbox_limits=CgroupLimits.AppliesEveryLimit:CgroupLimits.PidsLimitStopsAForkBomb
sandbox_limits+=:Lifecycle.OomKillIsDecodedFromMemoryEvents:Lifecycle.MemoryLimitOomKillIsReported
run_suite sandbox_limits bin/sandbox_integration_tests --gtest_filter="$sandbox_limits"
run_suite daemon_limits bin/daemon_tests --gtest_filter='Quotas.*'

# The whole journal, for the host to keep next to the results.
journalctl --no-pager -o short-monotonic >out/journal.txt
exit "$rc"
