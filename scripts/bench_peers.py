#!/usr/bin/env python3
"""Whole-process comparison: msyms loading SQLite + driver as modules and running the query,
against the same objects linked normally, as a dlopen()ed shared object, and the in-memory
loaders that are installed (tcc -run, llvm-rtdyld, llvm-jitlink; Debian's versioned LLVM tools
too). msyms runs twice: linking the objects, and mapping them from its image cache (filled by
one run before the measured ones), which is what dlopen's prelinked .so corresponds to.

Runs are interleaved (one of each command per round) so that machine noise hits all alike;
prints medians and ratios to the dlopen host.

    scripts/bench_peers.py [--runs N] [--variant gcc-pie|gcc-nopic|clang]
"""

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
OUT = ROOT / "target" / "peers"
FUNCTION = "sqlite_selftest"

MAIN_C = f"""
#include <stdio.h>
long {FUNCTION}(void);
int main(void) {{ printf("%ld\\n", {FUNCTION}()); return 0; }}
"""

DLOPEN_C = """
#include <dlfcn.h>
#include <stdio.h>
int main(int argc, char **argv) {
    void *h = dlopen(argv[1], RTLD_NOW);
    if (!h) { fprintf(stderr, "%s\\n", dlerror()); return 1; }
    long (*f)(void) = (long (*)(void))dlsym(h, argv[2]);
    if (!f) { fprintf(stderr, "%s\\n", dlerror()); return 1; }
    printf("%ld\\n", f());
    return 0;
}
"""


def run(cmd, **kw):
    return subprocess.run(cmd, check=True, capture_output=True, text=True, **kw)


def build(variant):
    OUT.mkdir(parents=True, exist_ok=True)
    objects = [ROOT / "corpus/x86_64" / variant / f for f in ("sqlite.o", "sqlite_driver.o")]
    run(["cargo", "build", "--release", "-q", "-p", "msyms"], cwd=ROOT)
    (OUT / "main.c").write_text(MAIN_C)
    (OUT / "dlopen_host.c").write_text(DLOPEN_C)
    pie = [] if variant != "gcc-nopic" else ["-no-pie"]
    run(["gcc", "-O2", *pie, "-o", OUT / "native", OUT / "main.c", *objects, "-lm"])
    run(["gcc", "-O2", "-o", OUT / "dlopen_host", OUT / "dlopen_host.c", "-ldl"])
    script = f"load {objects[0]}; load {objects[1]}; call {FUNCTION}"
    msyms = str(ROOT / "target/release/msyms")
    cache = OUT / "image-cache"
    shutil.rmtree(cache, ignore_errors=True)
    cached = [msyms, "--image-cache", str(cache), "-c", script]
    run(cached)  # fills the cache
    commands = {
        "linked normally": [str(OUT / "native")],
        "msyms load+call": [msyms, "-c", script],
        "msyms load+call, image cache": cached,
    }
    try:
        # -Bsymbolic: PIE code refers to its own globals directly, which a shared object may
        # only do when its symbols cannot be interposed.
        run(["gcc", "-shared", "-Wl,-Bsymbolic", "-o", OUT / "sqlite_module.so", *objects, "-lm"])
        commands["dlopen .so"] = [str(OUT / "dlopen_host"), str(OUT / "sqlite_module.so"), FUNCTION]
    except subprocess.CalledProcessError as e:
        print(f"note: these objects do not link as a shared object ({e.stderr.strip()[:200]})")
    run(["gcc", "-c", "-O2", "-o", OUT / "main.o", OUT / "main.c"])
    rtdyld = tool("llvm-rtdyld")
    if rtdyld:
        # rtdyld opens each --dylib by the path given (a soname is "not found") and starts at
        # `_main` unless told otherwise.
        libs = [f"--dylib={library_path(name)}" for name in ("libc.so.6", "libm.so.6")]
        commands["llvm-rtdyld -execute"] = [
            rtdyld, "-execute", "-entry=main", *libs, str(OUT / "main.o"), *map(str, objects)
        ]
    jitlink = tool("llvm-jitlink")
    if jitlink:
        commands["llvm-jitlink"] = [jitlink, str(OUT / "main.o"), *map(str, objects)]
    if shutil.which("tcc"):
        # tcc links the objects in memory and compiles main.c, then runs it.
        commands["tcc -run"] = ["tcc", *map(str, objects), "-lm", "-run", str(OUT / "main.c")]
    return commands


def library_path(soname):
    """Where the C compiler's linker finds the shared library `soname`."""
    found = run(["gcc", f"-print-file-name={soname}"]).stdout.strip()
    return os.path.realpath(found)


def tool(name):
    """The LLVM tool `name`, unversioned or as Debian installs it (name-14 and so on)."""
    found = shutil.which(name)
    for version in range(20, 10, -1):
        found = found or shutil.which(f"{name}-{version}")
    return found


def measure(commands, runs):
    """Medians need every run to succeed; a command that fails once is reported as failed."""
    times = {name: [] for name in commands}
    answers = {}
    for _ in range(runs):
        for name, cmd in list(commands.items()):
            start = time.perf_counter()
            done = subprocess.run(cmd, capture_output=True, text=True)
            times[name].append(time.perf_counter() - start)
            if done.returncode != 0:
                answers[name] = f"failed (status {done.returncode})"
                times[name] = None
                del commands[name]
                continue
            answers[name] = done.stdout.strip().splitlines()[-1] if done.stdout.strip() else ""
    return times, answers


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=40)
    parser.add_argument("--variant", default="gcc-pie")
    args = parser.parse_args()
    commands = build(args.variant)
    times, answers = measure(commands, args.runs)
    reference = "dlopen .so" if times.get("dlopen .so") else "linked normally"
    ref = statistics.median(times[reference])
    print(f"SQLite query, {args.variant} objects, {args.runs} interleaved runs, whole process")
    print(f"| command | median ms | vs {reference} | answer |")
    print("|---|---:|---:|---|")
    for name, samples in times.items():
        if not samples:
            print(f"| {name} | – | – | {answers.get(name, '')} |")
            continue
        median = statistics.median(samples)
        print(f"| {name} | {median * 1000:.2f} | {median / ref:.2f}x | {answers.get(name, '')} |")
    for mine in ("msyms load+call", "msyms load+call, image cache"):
        ours = times.get(mine)
        if not ours:
            continue
        ours = statistics.median(ours)
        for name, samples in times.items():
            if samples and not name.startswith("msyms") and statistics.median(samples) > ours:
                print(f"{mine} is {statistics.median(samples) / ours:.1f}x faster than {name}")


if __name__ == "__main__":
    main()
