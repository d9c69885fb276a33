"""The time rules of joining labels to scored events (pure: times in, verdicts out).

A scored event waits for its label for ``label_ttl_ms`` of event time. Each partition has
an event-time clock: the highest event or label time seen on it (its watermarks). Times
are integer epoch milliseconds.

- A label joins when it comes within the TTL of its event:
  ``label_ts - event_ts <= label_ttl_ms`` (a label exactly at the TTL still joins);
  later than that it is ``expired``.
- A scored event is forgotten once the clock has passed ``event_ts + label_ttl_ms +
  allowed_lateness_ms``: any label still to come would be beyond the TTL, give or take the
  lateness the partition tolerates.
- A label held for an event not yet seen is given up (``unmatched``) once the clock has
  passed ``label_ts + label_ttl_ms``: an event that late would be beyond its own TTL.

>>> join_outcome(event_ts_ms=1_000, label_ts_ms=11_000, label_ttl_ms=10_000)
'joined'
>>> join_outcome(event_ts_ms=1_000, label_ts_ms=11_001, label_ttl_ms=10_000)
'expired'
>>> pending_expired(event_ts_ms=0, clock_ms=15_000, label_ttl_ms=10_000, lateness_ms=5_000)
False
>>> pending_expired(event_ts_ms=0, clock_ms=15_001, label_ttl_ms=10_000, lateness_ms=5_000)
True
>>> held_label_expired(label_ts_ms=0, clock_ms=10_001, label_ttl_ms=10_000)
True
"""

from __future__ import annotations


def join_outcome(*, event_ts_ms: int, label_ts_ms: int, label_ttl_ms: int) -> str:
    """``joined`` or ``expired`` for a label meeting its (not yet labelled) event."""
    return "joined" if label_ts_ms - event_ts_ms <= label_ttl_ms else "expired"


def pending_expiry_ms(event_ts_ms: int, label_ttl_ms: int, lateness_ms: int) -> int:
    """The clock time after which a scored event stops waiting for its label."""
    return event_ts_ms + label_ttl_ms + lateness_ms


def pending_expired(*, event_ts_ms: int, clock_ms: int, label_ttl_ms: int,
                    lateness_ms: int) -> bool:
    return clock_ms > pending_expiry_ms(event_ts_ms, label_ttl_ms, lateness_ms)


def held_label_expiry_ms(label_ts_ms: int, label_ttl_ms: int) -> int:
    """The clock time after which a label held for an unseen event is unmatched."""
    return label_ts_ms + label_ttl_ms


def held_label_expired(*, label_ts_ms: int, clock_ms: int, label_ttl_ms: int) -> bool:
    return clock_ms > held_label_expiry_ms(label_ts_ms, label_ttl_ms)
