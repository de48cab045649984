"""Holding a process to a share of one CPU with the cgroup cpu controller:
cgroup v2 `cpu.max` when /sys/fs/cgroup/cgroup.controllers exists, else
cgroup v1 `cpu.cfs_quota_us`. Throughput under the same quota compares how
much work each proxy does per request, which raw requests per second on a
shared 2-core machine cannot."""
import contextlib
import os

PERIOD_US = 100_000
V2_ROOT = "/sys/fs/cgroup"
V1_ROOT = "/sys/fs/cgroup/cpu"


class CpuQuota:
    """A cgroup limited to `share` of one CPU; `unavailable` says why not
    when it cannot be created (then nothing is limited)."""

    def __init__(self, share, name):
        self.share = share
        self.path = None
        self.unavailable = None
        self.v2 = os.path.exists(os.path.join(V2_ROOT, "cgroup.controllers"))
        root = V2_ROOT if self.v2 else V1_ROOT
        try:
            path = os.path.join(root, name)
            os.mkdir(path)
            self.path = path
            quota = int(PERIOD_US * share)
            if self.v2:
                self._write("cpu.max", f"{quota} {PERIOD_US}")
            else:
                self._write("cpu.cfs_period_us", str(PERIOD_US))
                self._write("cpu.cfs_quota_us", str(quota))
        except OSError as error:
            self.unavailable = f"cgroup {'v2' if self.v2 else 'v1'} cpu controller not writable ({error})"
            self.remove()

    @contextlib.contextmanager
    def holding(self, pid):
        """Moves every thread of `pid` into the cgroup for the duration."""
        parent = os.path.dirname(self.path)
        self._move(self.path, pid)
        try:
            yield
        finally:
            self._move(parent, pid)

    def remove(self):
        if self.path:
            os.rmdir(self.path)
            self.path = None

    def _write(self, name, value):
        with open(os.path.join(self.path, name), "w") as f:
            f.write(value)

    @staticmethod
    def _move(cgroup, pid):
        with open(os.path.join(cgroup, "cgroup.procs"), "w") as f:
            f.write(str(pid))
