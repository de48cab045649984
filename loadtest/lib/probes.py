"""Counting what a process does per request: user-space instructions under
callgrind, and system calls under strace. Both slow the process down, so
they count work per request; they are not timed."""
import glob
import os
import re
import signal
import subprocess
import time

import processes


def callgrind_prefix(out_file):
    """The command prefix that runs a server under callgrind, not counting
    anything until told (counters are zeroed before each measurement)."""
    return ["valgrind", "--tool=callgrind", f"--callgrind-out-file={out_file}"]


def instructions(pid, out_file, send):
    """Instructions (Ir) the process executes while `send()` runs: zero the
    counters, send, dump, and read the total from the dump."""
    for old in glob.glob(out_file + ".*"):
        os.remove(old)
    _callgrind_control("-z", pid)
    send()
    _callgrind_control("-d", pid)
    dumps = glob.glob(out_file + ".*")
    if len(dumps) != 1:
        raise RuntimeError(f"expected one callgrind dump, found {dumps}")
    with open(dumps[0]) as f:
        for line in f:
            if line.startswith(("summary:", "totals:")):
                total = int(line.split()[1])
                os.remove(dumps[0])
                return total
    raise RuntimeError(f"no instruction total in {dumps[0]}")


def syscalls(pid, send, log_path):
    """System calls by every thread of `pid` while `send()` runs, from
    `strace -c -f -p PID`: returns {name: calls}, with "total"."""
    tracer = subprocess.Popen(
        ["strace", "-c", "-f", "-p", str(pid), "-o", log_path],
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
    )
    try:
        _wait_until_attached(tracer)
        send()
    finally:
        tracer.send_signal(signal.SIGINT)
        tracer.wait(30)
    return _parse_strace_summary(log_path)


def _wait_until_attached(tracer):
    """strace reports attaching on stderr; wait for that, then a moment for
    every thread to be attached."""
    line = tracer.stderr.readline()
    if "attached" not in line:
        raise RuntimeError(f"strace did not attach: {line}")
    time.sleep(0.5)


def _parse_strace_summary(path):
    counts = {}
    with open(path) as f:
        for line in f:
            fields = line.split()
            # % time, seconds, usecs/call, calls, [errors,] syscall
            if len(fields) >= 5 and re.fullmatch(r"[\d.]+", fields[0]) and fields[3].isdigit():
                counts[fields[-1]] = int(fields[3])
            elif fields and fields[-1] == "total":
                counts["total"] = int(fields[3])
    return counts


def _callgrind_control(flag, pid):
    processes.run(["callgrind_control", flag, str(pid)], "0-1", timeout=120)
