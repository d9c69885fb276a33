"""Times a person types (``--since``, ``--until``, split boundaries): never ambiguous.

Epoch milliseconds, or ISO-8601 with an offset. A time without an offset means a different
instant in every time zone, and a 10-digit number is seconds, not milliseconds: both are
refused with a message that says what to write instead.

>>> parse_time_ms("2026-01-01T00:00Z"), parse_time_ms("2026-01-01T01:00+01:00")
(1767225600000, 1767225600000)
>>> parse_time_ms("1767225600000")
1767225600000
>>> parse_time_ms("2026-01-01T00:00")
Traceback (most recent call last):
...
ValueError: time '2026-01-01T00:00' has no UTC offset: add Z or +HH:MM, e.g. 2026-01-01T00:00Z
>>> parse_time_ms("1767225600")
Traceback (most recent call last):
...
ValueError: time '1767225600' looks like epoch seconds: give epoch milliseconds ...
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
#: Epoch numbers below this are seconds, not milliseconds (1e11 ms is March 1973).
_SECONDS_BELOW = 100_000_000_000


def parse_time_ms(value: str) -> int:
    """Epoch milliseconds, or ISO-8601 with an offset (``Z``, ``+01:00``), to epoch ms."""
    text = value.strip()
    if text.lstrip("-").isdigit():
        number = int(text)
        if 0 < abs(number) < _SECONDS_BELOW and len(text.lstrip("-")) >= 9:
            raise ValueError(f"time {value!r} looks like epoch seconds: give epoch "
                             f"milliseconds ({number * 1000}) or ISO-8601 with an offset")
        return number
    try:
        dt = datetime.fromisoformat(text)
    except ValueError:
        raise ValueError(f"not a time: {value!r} (epoch ms, or ISO-8601 with an offset, "
                         f"e.g. 2026-01-01T00:00Z)") from None
    if dt.tzinfo is None:
        raise ValueError(f"time {value!r} has no UTC offset: add Z or +HH:MM, "
                         f"e.g. {text}Z")
    return (dt - _EPOCH) // timedelta(milliseconds=1)


def format_ms(ms: int) -> str:
    """An epoch-ms time as ISO-8601 UTC, for messages.

    >>> format_ms(1767225600000)
    '2026-01-01T00:00:00Z'
    """
    dt = _EPOCH + timedelta(milliseconds=ms)
    text = dt.isoformat(timespec="milliseconds").replace("+00:00", "Z")
    return text.replace(".000Z", "Z")
