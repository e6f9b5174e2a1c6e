#!/usr/bin/env python3
"""Sorts ThreadSanitizer reports into ours and gRPC's; exits 1 if any is ours.

  triage_tsan.py <source dir> <report file>...

Debian's gRPC, Abseil and protobuf are not built with TSan. Their locks
(absl::Mutex sleeps on futexes of its own) are invisible to it, so memory
that gRPC hands from one of its threads to another, including the grpcpp
header code compiled into our binaries, looks unsynchronised: hundreds of
reports per daemon that say nothing about our code. A suppression file
cannot tell those apart from our races, because a TSan suppression matches
any frame of a report, and every gRPC thread, including the ones that run
our handlers, has gRPC frames at its bottom.

So each report is judged by the code that made the racing accesses: for
each access, the first frame that is neither the sanitizer runtime nor a
header of libstdc++ or of protobuf-generated code. If that frame is in our
source tree (its file under <source dir>/src, /sandbox or /tests, or its
function in namespace launcher::, sandbox:: or pltest::) for every access of
the report, the race is between two pieces of our code: it is printed and
fails the tier. A report with gRPC's code on one side is counted as gRPC's
(our loop filling a response that a gRPC thread then serialises is ordered
by gRPC's invisible locks) and listed by its top frames.
"""
import collections
import os
import re
import subprocess
import sys

FRAME = re.compile(r"^\s+#\d+ (?P<func>.+?) (?P<file>\S+) \((?P<module>[^+)]+)")


def frames_of(block):
    for line in block.splitlines()[1:]:
        m = FRAME.match(line)
        if m:
            yield m.group("func"), m.group("file"), m.group("module")


def decisive(frames):
    """The first frame that says whose code made the access."""
    for func, path, module in frames:
        if "libtsan" in module or "/libsanitizer/" in path:
            continue
        file = re.sub(r":\d+(:\d+)?$", "", path)
        if (file.startswith(("/usr/include/c++/", "gen/")) or "/gen/" in file
                or file.endswith((".pb.cc", ".pb.h"))):
            continue
        return func, path, module
    return None


def ours(frame, source):
    func, path, _module = frame
    path = re.sub(r":\d+(:\d+)?$", "", path)  # "file.cc:12:5"
    if func.startswith(("launcher::", "sandbox::", "pltest::")):
        return True
    # Paths are absolute or relative to the object's build directory
    # ("../../../tests/daemon/x.cc" with the build dir inside the checkout,
    # "../../main/src/x.cc" beside it).
    candidates = [path]
    if not path.startswith("/"):
        stripped = re.sub(r"^(\.\./)+", "", path)
        candidates = [os.path.join(source, stripped),
                      os.path.join(os.path.dirname(source), stripped)]
    for c in candidates:
        real = os.path.realpath(c)
        if os.path.exists(real) and any(real.startswith(os.path.join(source, d) + "/")
                                        for d in ("src", "sandbox", "tests")):
            return True
    return False


# A frame as the tier's TSAN_OPTIONS print it (symbolize=0 with
# stack_trace_format "#%n %p (%m+%o)"): address, module path and offset.
RAW_FRAME = re.compile(r"^(?P<indent>\s+)#(?P<n>\d+) 0x[0-9a-f]+ "
                       r"\((?P<module>[^+)]+)\+0x(?P<offset>[0-9a-f]+)\)$", re.M)
SYMBOLIZER = "/usr/lib/llvm-14/bin/llvm-symbolizer"


def symbolize(texts):
    """Names and lines for the raw frames of all reports, after the run.

    The processes under test do not symbolize (symbolize=0): clang's runtime
    would start llvm-symbolizer as a child of each daemon, in the daemon's
    cgroup, where the tests' leak checks rightly count it as a stray process
    and the cgroup tree cannot be removed. One llvm-symbolizer here does it
    for every report instead. Each raw frame becomes one line per inlined
    level, "#N function file:line:col (module+0xoffset)", the format the
    parsing below reads.
    """
    wanted = []
    seen = set()
    for text in texts:
        for m in RAW_FRAME.finditer(text):
            key = (m.group("module"), m.group("offset"))
            if key not in seen:
                seen.add(key)
                wanted.append(key)
    if not wanted:
        return texts
    stdin = "".join(f'"{module}" 0x{offset}\n' for module, offset in wanted)
    out = subprocess.run([SYMBOLIZER, "--inlines", "--demangle"], input=stdin,
                         capture_output=True, text=True, check=True).stdout
    answers = out.split("\n\n")
    names = {}
    for key, answer in zip(wanted, answers):
        lines = [l for l in answer.split("\n") if l]
        names[key] = [(lines[i], lines[i + 1] if i + 1 < len(lines) else "??:0")
                      for i in range(0, len(lines), 2)] or [("??", "??:0")]

    def rewrite(m):
        key = (m.group("module"), m.group("offset"))
        return "\n".join(f'{m.group("indent")}#{m.group("n")} {func} {where} '
                         f'({key[0]}+0x{key[1]})' for func, where in names[key])

    return [RAW_FRAME.sub(rewrite, text) for text in texts]


def main():
    source = os.path.realpath(sys.argv[1])
    counted = collections.Counter()
    mine = []
    total = 0
    names = sys.argv[2:]
    texts = symbolize([open(name, errors="replace").read() for name in names])
    for name, text in zip(names, texts):
        for report in text.split("==================\n"):
            if "WARNING: ThreadSanitizer:" not in report:
                continue
            total += 1
            kind = re.search(r"WARNING: ThreadSanitizer: ([^(\n]+)", report).group(1).strip()
            blocks = re.split(r"\n(?=  \S)", report)
            accesses = [b for b in blocks if b.startswith(("  Read", "  Write", "  Atomic",
                                                           "  Previous", "  Mutex", "  Cycle"))]
            tops = [decisive(frames_of(b)) for b in accesses]
            if (tops and all(t and ours(t, source) for t in tops)) or (kind != "data race"
                                                                     and not accesses):
                mine.append((name, report))
            else:
                counted[(kind,) + tuple(t[0][:80] if t else "?" for t in tops)] += 1
    print(f"tsan triage: {total} reports, {len(mine)} between two pieces of our code, "
          f"{total - len(mine)} involving uninstrumented gRPC/Abseil/protobuf")
    for key, n in counted.most_common(8):
        print(f"  {n:5d} x {key[0]}: " + " / ".join(key[1:]))
    for name, report in mine[:20]:
        print(f"== {name}\n{report}")
    return 1 if mine else 0


if __name__ == "__main__":
    sys.exit(main())
