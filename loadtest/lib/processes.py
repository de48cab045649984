"""Child processes of a load-test run: started pinned to CPUs, tracked by
PID, and all stopped by PID when the run ends (normally, on error or on
Ctrl-C). Nothing is ever stopped by name."""
import os
import signal
import socket
import subprocess
import time

_children = []


def free_port():
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start(argv, cpus, log_path, prefix=(), env=None):
    """Starts `prefix + argv` under `taskset -c CPUS`, output to log_path.
    The prefix (e.g. no_thp.py, valgrind) runs inside the pinning, so the
    PID returned is the process doing the work (exec keeps the PID).
    `env` adds variables to the inherited environment."""
    log = open(log_path, "ab")
    command = ["taskset", "-c", cpus, *prefix, *argv]
    child = subprocess.Popen(
        command, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
        env={**os.environ, **(env or {})},
    )
    log.close()
    _children.append(child)
    return child


def wait_for_port(child, port, log_path, timeout=60.0):
    """Waits until something accepts on 127.0.0.1:port; fails with the
    child's log if it exits first or never listens."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if child.poll() is not None:
            raise RuntimeError(f"{child.args} exited with {child.returncode}:\n{_tail(log_path)}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return
        except OSError:
            time.sleep(0.1)
    raise RuntimeError(f"{child.args} did not listen on port {port}:\n{_tail(log_path)}")


def run(argv, cpus, timeout=600):
    """Runs `argv` pinned to CPUS to completion, tracked while it runs;
    returns its standard output (stderr included). Fails on a non-zero exit."""
    child = subprocess.Popen(
        ["taskset", "-c", cpus, *argv], stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
        stdin=subprocess.DEVNULL, text=True,
    )
    _children.append(child)
    try:
        output, _ = child.communicate(timeout=timeout)
    finally:
        stop(child)
    if child.returncode != 0:
        raise RuntimeError(f"{' '.join(argv)} exited with {child.returncode}:\n{output[-2000:]}")
    return output


def stop(child, timeout=10.0):
    """SIGTERM, then SIGKILL after `timeout`, to this child's PID only."""
    if child.poll() is None:
        os.kill(child.pid, signal.SIGTERM)
        try:
            child.wait(timeout)
        except subprocess.TimeoutExpired:
            os.kill(child.pid, signal.SIGKILL)
            child.wait()
    if child in _children:
        _children.remove(child)


def stop_all():
    """Stops every child still running, newest first."""
    for child in reversed(list(_children)):
        stop(child)


def _tail(path, lines=20):
    with open(path, errors="replace") as f:
        return "".join(f.readlines()[-lines:])
