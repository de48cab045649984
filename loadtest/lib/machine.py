"""What the machine is and what it spent: identity for the report, load
average, a process's CPU time from schedstat and the whole machine's from
/proc/stat."""
import glob
import os
import platform
import subprocess
import time

TICK_NS = 1e9 / os.sysconf("SC_CLK_TCK")


def describe():
    """nproc, CPU model, kernel and date, for the report's header."""
    model = "unknown"
    with open("/proc/cpuinfo") as f:
        for line in f:
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    return {
        "nproc": subprocess.run(["nproc"], capture_output=True, text=True).stdout.strip(),
        "cpu": model,
        "kernel": platform.release(),
        "date": time.strftime("%Y-%m-%d %H:%M:%S %Z"),
    }


def load_average():
    """The one-minute load average."""
    with open("/proc/loadavg") as f:
        return float(f.read().split()[0])


def process_cpu_ns(pid):
    """Nanoseconds on CPU (user + kernel) of every thread of `pid`: field 1
    of /proc/PID/task/*/schedstat."""
    total = 0
    for path in glob.glob(f"/proc/{pid}/task/*/schedstat"):
        try:
            with open(path) as f:
                total += int(f.read().split()[0])
        except (FileNotFoundError, ProcessLookupError):
            pass  # a thread that exited meanwhile
    return total


def machine_busy_ns():
    """Nanoseconds every CPU spent not idle (user, nice, system, irq,
    softirq), from the first line of /proc/stat."""
    with open("/proc/stat") as f:
        fields = [int(x) for x in f.readline().split()[1:8]]
    user, nice, system, _idle, _iowait, irq, softirq = fields
    return (user + nice + system + irq + softirq) * TICK_NS
