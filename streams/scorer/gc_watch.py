"""The cyclic GC's pauses in this process, timed through ``gc.callbacks`` and exported.

A full collection (generation 2) walks every tracked object the process holds: with
state decoded into Python objects it paused the scorer for seconds. :class:`GcPauses`
times every collection from its ``start`` callback to its ``stop`` by the wall clock and
keeps, per generation, the count, the total and the longest pause; :class:`GcPauseCollector`
exports them to a registry:

- ``streambed_gc_pauses_total{generation}``: collections finished;
- ``streambed_gc_pause_seconds_total{generation}``: their summed wall-clock duration;
- ``streambed_gc_pause_max_seconds{generation}``: the longest one since the scorer began
  serving (:meth:`GcPauses.serving`, once its tables are recovered and start-up's objects
  frozen), or since the process began until then;
- ``streambed_gc_startup_pause_max_seconds{generation}``: the longest one before that
  (imports, recovery, and the collection before the freeze);
- ``streambed_gc_pause_max_cpu_seconds{generation}``: the CPU time of the collection
  that took the most CPU time since the scorer began serving (the thread's own
  ``time.thread_time``);
- ``streambed_gc_walked_objects_max{generation="2"}``: the most tracked objects one full
  collection walked since the scorer began serving (every object outside the frozen
  generation, counted as it starts: what its pause grows with; :mod:`.gc_bounds` says
  what they are).

The wall clock includes other processes' turns on the core (a loaded machine lengthens a
pause: on 2 cores at load 15 a process gets a fraction of one), so the CPU time of each
collection is kept beside it; the callbacks cost four clock reads per collection, and a
full collection also the list of the objects it is about to walk (``gc.get_objects``:
about a microsecond per thousand objects, before its clocks start).

>>> pauses = GcPauses(clock=iter([1.0, 1.25, 2.0, 2.5]).__next__,
...                   cpu_clock=iter([0.0, 0.125, 0.5, 0.5]).__next__,
...                   objects=lambda: 9_000)
>>> pauses.callback("start", {"generation": 2})
>>> pauses.callback("stop", {"generation": 2})
>>> pauses.callback("start", {"generation": 0})
>>> pauses.callback("stop", {"generation": 0})
>>> pauses.count, pauses.longest[2], pauses.total[0]
([1, 0, 1], 0.25, 0.5)
>>> pauses.longest_cpu[2], pauses.walked_max
(0.125, 9000)
>>> pauses.serving()
>>> pauses.longest[2], pauses.startup_longest[2], pauses.count[2], pauses.longest_cpu[2]
(0.0, 0.25, 1, 0.0)
>>> pauses.walked_max
0
"""

from __future__ import annotations

import gc
import time
from collections.abc import Callable, Iterator
from typing import Any

from prometheus_client import CollectorRegistry
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.registry import Collector

GENERATIONS = 3
FULL = GENERATIONS - 1


def tracked_objects() -> int:
    """The objects a full collection would walk now: every tracked object outside the
    frozen (permanent) generation."""
    return len(gc.get_objects())


class GcPauses:
    """Counts, totals and the longest pause of each generation's collections."""

    def __init__(self, clock: Callable[[], float] = time.perf_counter,
                 cpu_clock: Callable[[], float] = time.thread_time,
                 objects: Callable[[], int] = tracked_objects) -> None:
        self.clock, self.cpu_clock, self.objects = clock, cpu_clock, objects
        self.count = [0] * GENERATIONS
        self.total = [0.0] * GENERATIONS
        self.longest = [0.0] * GENERATIONS
        self.startup_longest = [0.0] * GENERATIONS
        self.longest_cpu = [0.0] * GENERATIONS
        #: The most objects one full collection walked (since serving began).
        self.walked_max = 0
        self._began = self._began_cpu = 0.0

    def callback(self, phase: str, info: dict[str, Any]) -> None:
        if phase == "start":
            if info["generation"] == FULL:
                self.walked_max = max(self.walked_max, self.objects())
            self._began, self._began_cpu = self.clock(), self.cpu_clock()
            return
        took = self.clock() - self._began
        cpu = self.cpu_clock() - self._began_cpu
        generation = int(info["generation"])
        self.count[generation] += 1
        self.total[generation] += took
        if took > self.longest[generation]:
            self.longest[generation] = took
        if cpu > self.longest_cpu[generation]:
            self.longest_cpu[generation] = cpu

    def serving(self) -> None:
        """Start-up is over: the longest pauses so far become start-up's, and the longest
        restart from zero (counts and totals go on)."""
        self.startup_longest = [max(a, b) for a, b in zip(self.startup_longest, self.longest,
                                                          strict=True)]
        self.longest = [0.0] * GENERATIONS
        self.longest_cpu = [0.0] * GENERATIONS
        self.walked_max = 0

    def install(self) -> GcPauses:
        """Time this process's collections from now on (once per process)."""
        if self.callback not in gc.callbacks:
            gc.callbacks.append(self.callback)
        return self


class GcPauseCollector(Collector):
    """``pauses`` as Prometheus series (read at each scrape)."""

    def __init__(self, pauses: GcPauses) -> None:
        self.pauses = pauses

    def collect(self) -> Iterator[Any]:
        p = self.pauses
        count = CounterMetricFamily(
            "streambed_gc_pauses", "Cyclic garbage collections finished in this process, "
            "by generation (2: full collections).", labels=["generation"])
        total = CounterMetricFamily(
            "streambed_gc_pause_seconds", "Wall-clock seconds this process spent in "
            "cyclic garbage collections, by generation.", labels=["generation"])
        longest = GaugeMetricFamily(
            "streambed_gc_pause_max_seconds", "The longest cyclic garbage collection of "
            "this process since it began serving (wall clock), by generation.",
            labels=["generation"])
        startup = GaugeMetricFamily(
            "streambed_gc_startup_pause_max_seconds", "The longest cyclic garbage "
            "collection of this process before it began serving (start-up and recovery).",
            labels=["generation"])
        cpu = GaugeMetricFamily(
            "streambed_gc_pause_max_cpu_seconds", "The most CPU time one cyclic garbage "
            "collection of this process took since it began serving, by generation.",
            labels=["generation"])
        walked = GaugeMetricFamily(
            "streambed_gc_walked_objects_max", "The most tracked objects one full "
            "collection of this process walked since it began serving (outside the frozen "
            "generation).", labels=["generation"])
        walked.add_metric([str(FULL)], p.walked_max)
        for g in range(GENERATIONS):
            count.add_metric([str(g)], p.count[g])
            total.add_metric([str(g)], p.total[g])
            longest.add_metric([str(g)], p.longest[g])
            startup.add_metric([str(g)], p.startup_longest[g])
            cpu.add_metric([str(g)], p.longest_cpu[g])
        yield from (count, total, longest, startup, cpu, walked)


def watch_gc(registry: CollectorRegistry) -> GcPauses:
    """Time this process's collections and export them to ``registry``."""
    pauses = GcPauses().install()
    registry.register(GcPauseCollector(pauses))
    return pauses
