"""Split a training set by event time into consecutive parts, with no label leaking forward.

A split is written ``"train:<T1,valid:<T2,test"``: each part but the last ends (exclusive)
at its time, the last takes the rest. Times are ISO-8601 with an offset or epoch ms.

Two rules keep one part from seeing the next:

- with a ``gap``, the next part starts ``gap`` after the previous one ends; events in
  between belong to no part (``[T1, T1 + gap)`` is left out);
- an example whose label became known (``label_ts``) at or after the start of the next
  part is dropped: at that moment its outcome was not yet known, so training on it would
  use the future. The gap gives a part's labels time to arrive before the next starts.

>>> s = parse_split("train:<1000,valid:<2000,test", gap_ms=100)
>>> [(p.name, p.start_ms, p.end_ms) for p in s.bounds()]
[('train', None, 1000), ('valid', 1100, 2000), ('test', 2100, None)]
>>> frame = pd.DataFrame({"ts": [10, 990, 1050, 1500, 2500], "label": [0, 1, 0, 1, 1],
...                       "label_ts": [20, 1200, 1060, 1600, 2600]})
>>> parts = split_by_time(frame, s)
>>> {name: part["ts"].tolist() for name, part in parts.parts.items()}
{'train': [10], 'valid': [1500], 'test': [2500]}
>>> parts.in_gap, parts.label_too_late
(1, {'train': 1, 'valid': 0})
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

import pandas as pd

from streams.replay.times import parse_time_ms

_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_-]*$")


@dataclass(frozen=True, slots=True)
class Part:
    """One part of a split: events with ``start_ms <= ts < end_ms`` (None: unbounded)."""

    name: str
    start_ms: int | None
    end_ms: int | None


@dataclass(frozen=True, slots=True)
class TimeSplit:
    """Named parts in time order, each ending where the next begins (plus the gap)."""

    names: tuple[str, ...]
    ends_ms: tuple[int, ...]  # one fewer than names: the last part is open-ended
    gap_ms: int = 0

    def __post_init__(self) -> None:
        if len(self.names) < 2:
            raise ValueError("a split needs at least two parts, e.g. 'train:<T,test'")
        if len(self.ends_ms) != len(self.names) - 1:
            raise ValueError("every part but the last needs an end time")
        if len(set(self.names)) != len(self.names):
            raise ValueError(f"part names repeat: {list(self.names)}")
        if any(b <= a for a, b in zip(self.ends_ms, self.ends_ms[1:], strict=False)):
            raise ValueError("part end times must increase")
        if self.gap_ms < 0:
            raise ValueError("the gap cannot be negative")
        for a, b in zip(self.ends_ms, self.ends_ms[1:], strict=False):
            if a + self.gap_ms >= b:
                raise ValueError(f"a part starting at {a} + gap ends at {b}: it would be "
                                 f"empty; shorten the gap or move the times")

    def bounds(self) -> list[Part]:
        starts = [None, *(end + self.gap_ms for end in self.ends_ms)]
        ends = [*self.ends_ms, None]
        return [Part(n, s, e) for n, s, e in zip(self.names, starts, ends, strict=True)]


def parse_split(text: str, gap_ms: int = 0) -> TimeSplit:
    """``"train:<T1,valid:<T2,test"`` into a :class:`TimeSplit`; each ``T`` is epoch ms or
    ISO-8601 with an offset (:func:`~streams.replay.times.parse_time_ms`)."""
    names, ends = [], []
    pieces = [p.strip() for p in text.split(",")]
    for i, piece in enumerate(pieces):
        name, sep, end = piece.partition(":")
        name, end = name.strip(), end.strip()
        if not _NAME.match(name):
            raise ValueError(f"split part {piece!r}: a part is NAME:<TIME (the last just "
                             f"NAME), e.g. 'train:<2026-01-10T00:00Z,test'")
        last = i == len(pieces) - 1
        if last and sep:
            raise ValueError(f"split part {piece!r}: the last part takes the rest; "
                             f"write just {name!r}")
        if not last:
            if not end.startswith("<"):
                raise ValueError(f"split part {piece!r}: write NAME:<TIME (events before "
                                 f"TIME), e.g. '{name}:<2026-01-10T00:00Z'")
            ends.append(parse_time_ms(end[1:].strip()))
        names.append(name)
    return TimeSplit(tuple(names), tuple(ends), gap_ms)


@dataclass
class Splits:
    """The parts of a split frame, and what the leakage rules left out."""

    parts: dict[str, pd.DataFrame]
    #: Rows in no part: in a gap between two parts.
    in_gap: int = 0
    #: Per part (all but the last): rows dropped because their label became known at or
    #: after the next part's start.
    label_too_late: dict[str, int] = field(default_factory=dict)


def split_by_time(frame: pd.DataFrame, split: TimeSplit, *, ts_col: str = "ts",
                  label_ts_col: str = "label_ts", label_col: str = "label") -> Splits:
    """The rows of ``frame`` in each part of ``split`` by event time, labels that arrive
    after the next part's start dropped. A labelled frame needs ``label_ts_col``."""
    labelled = label_col in frame.columns
    if labelled and label_ts_col not in frame.columns and len(split.names) > 1:
        raise ValueError(f"splitting labelled examples needs the time each label became "
                         f"known ({label_ts_col!r}; a labels file's 'ts' column)")
    ts = frame[ts_col]
    out = Splits(parts={})
    bounds = split.bounds()
    covered = pd.Series(False, index=frame.index)
    for k, part in enumerate(bounds):
        keep = pd.Series(True, index=frame.index)
        if part.start_ms is not None:
            keep &= ts >= part.start_ms
        if part.end_ms is not None:
            keep &= ts < part.end_ms
        covered |= keep
        if labelled and k + 1 < len(bounds):
            next_start = bounds[k + 1].start_ms
            too_late = keep & (frame[label_ts_col] >= next_start)
            out.label_too_late[part.name] = int(too_late.sum())
            keep &= ~too_late
        out.parts[part.name] = frame[keep].reset_index(drop=True)
    out.in_gap = int((~covered).sum())
    return out
