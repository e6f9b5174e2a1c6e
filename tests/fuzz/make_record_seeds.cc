// Writes the seed corpus of the `record` target (corpus/record/): state
// files as record_file::encode writes them, plus the damaged forms the
// launcher meets after a crash (cut, extended, foreign). Run by hand when
// the record format grows fields:
//   cmake --build <dir> --target fuzz_make_record_seeds &&
//   <dir>/tests/fuzz/fuzz_make_record_seeds tests/fuzz/corpus/record
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <string>

#include "state/record_file.h"

namespace {

void write(const std::filesystem::path& file, const std::string& bytes) {
    std::ofstream(file, std::ios::binary | std::ios::trunc) << bytes;
}

}  // namespace

int main(int argc, char** argv) {
    if (argc != 2) {
        std::fprintf(stderr, "usage: %s <corpus dir>\n", argv[0]);
        return 2;
    }
    const std::filesystem::path dir = argv[1];
    std::filesystem::create_directories(dir);
    namespace st = pattern_launcher::state;
    namespace rf = launcher::record_file;

    st::KeyRecord running;
    running.set_process_id("ns:tenant-a:echo");
    running.set_pattern("echo");
    running.set_isolation("namespace");
    running.set_namespace_id("tenant-a");
    (*running.mutable_config())["DSN"] = "postgres://u:p@h/db?x=1";
    (*running.mutable_config())["MULTI"] = "a\nb";
    running.set_grace_period_ms(10000);
    running.set_accepted_at_unix_ms(1700000000000);
    running.set_desired(st::DESIRED_RUNNING);
    running.set_phase(st::PHASE_RUNNING);
    running.set_identity(1879048193);
    running.set_grpc_port(20000);
    running.set_health_port(20001);
    running.set_cgroup("/sys/fs/cgroup/pattern-launcher/ns:tenant-a/ns:tenant-a:echo");
    running.set_limits_enforced(true);
    running.set_egress_slot(3);
    running.set_pid(4242);
    running.set_incarnation(3);
    running.set_started_at_unix_ms(1700000000123);
    running.set_running_since_unix_ms(1700000001000);
    running.set_restart_count(2);
    running.set_ever_running(true);
    running.set_recovery("adopted pid 4242");
    const std::string full = rf::encode(running);
    write(dir / "running", full);

    st::KeyRecord backoff;
    backoff.set_process_id("session:s1:echo");
    backoff.set_pattern("echo");
    backoff.set_isolation("session");
    backoff.set_namespace_id("tenant-b");
    backoff.set_session_id("s1");
    backoff.set_desired(st::DESIRED_RUNNING);
    backoff.set_phase(st::PHASE_BACKOFF);
    backoff.set_consecutive_failures(4);
    backoff.set_error_count(7);
    backoff.set_last_error("exit status 1");
    backoff.set_exit_cause("exited");
    backoff.set_backoff_until_unix_ms(1700000005000);
    write(dir / "backoff", rf::encode(backoff));

    st::KeyRecord stopping;
    stopping.set_process_id("shared:echo");
    stopping.set_pattern("echo");
    stopping.set_isolation("none");
    stopping.set_desired(st::DESIRED_STOPPED);
    stopping.set_phase(st::PHASE_STOPPING);
    stopping.set_pid(77);
    write(dir / "stopping", rf::encode(stopping));

    write(dir / "empty-message", rf::frame(""));
    write(dir / "cut-in-message", full.substr(0, full.size() / 2));
    write(dir / "cut-in-magic", full.substr(0, 5));
    write(dir / "trailing-bytes", full + "xx");
    // A newer launcher's record: an unknown field 99 (varint 1) kept on read.
    write(dir / "unknown-field",
          rf::frame(running.SerializeAsString() + std::string("\x98\x06\x01", 3)));
    write(dir / "legacy-text", "pattern-launcher-state 1\nprocess_id=shared:echo\n");
    return 0;
}
