"""What a run measured: samples per (metric, contender, body size,
variant), a log of every timed run with the load average it started at,
and notes for the report."""
import statistics
import time
from collections import defaultdict


class Results:
    def __init__(self):
        self.samples = defaultdict(list)
        self.runs = []
        self.notes = []
        self.latency_rate = {}  # body size -> requests/s of the latency runs

    def add(self, metric, contender, body, variant, value):
        self.samples[(metric, contender, body, variant)].append(value)

    def log_run(self, contender, body, variant, quota, load, **figures):
        """Records one timed run; `figures` is empty for a skipped run."""
        self.runs.append({
            "time": time.strftime("%H:%M:%S"), "contender": contender, "body": body,
            "variant": variant, "quota": quota, "load": load, **figures,
        })

    def note(self, text):
        if text not in self.notes:
            self.notes.append(text)

    def summary(self, metric, contender, body, variant):
        """(median, min, max, count) of the samples, or None if there are none."""
        values = self.samples.get((metric, contender, body, variant))
        if not values:
            return None
        return statistics.median(values), min(values), max(values), len(values)

    def median(self, metric, contender, body, variant):
        found = self.summary(metric, contender, body, variant)
        return found[0] if found else None
