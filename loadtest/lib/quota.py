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

    @contextlib.contextmanager
    def holding_threads(self, pid, tids):
        """Each thread of `pid` in `tids` in a cgroup of its own, each
        limited to `share` of one CPU (so two workers get half a CPU each,
        not one CPU between them); the process's other threads are not
        limited. cgroup v1: thread ids are written to each group's `tasks`.
        cgroup v2: a threaded subtree (`cgroup.type` = threaded, thread ids
        in `cgroup.threads`); that path has not been run on this project's
        machines, which are v1."""
        root = V2_ROOT if self.v2 else V1_ROOT
        top = f"{self.path}-threads"
        groups = [os.path.join(top, f"t{i}") for i in range(len(tids))]
        made = []
        try:
            for path in (top, *groups):
                os.mkdir(path)
                made.append(path)
            if self.v2:
                for group in groups:
                    _write_file(os.path.join(group, "cgroup.type"), "threaded")
                _write_file(os.path.join(top, "cgroup.subtree_control"), "+cpu")
                _write_file(os.path.join(top, "cgroup.procs"), str(pid))
            for group, tid in zip(groups, tids):
                quota = int(PERIOD_US * self.share)
                if self.v2:
                    _write_file(os.path.join(group, "cpu.max"), f"{quota} {PERIOD_US}")
                    _write_file(os.path.join(group, "cgroup.threads"), str(tid))
                else:
                    _write_file(os.path.join(group, "cpu.cfs_period_us"), str(PERIOD_US))
                    _write_file(os.path.join(group, "cpu.cfs_quota_us"), str(quota))
                    _write_file(os.path.join(group, "tasks"), str(tid))
            yield
        finally:
            if self.v2:
                _write_file(os.path.join(root, "cgroup.procs"), str(pid))
            else:
                for tid in tids:
                    _write_file(os.path.join(root, "tasks"), str(tid))
            for path in reversed(made):
                os.rmdir(path)

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


def _write_file(path, value):
    with open(path, "w") as f:
        f.write(value)
