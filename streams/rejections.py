"""Why an input record is refused: every DLQ reason with its detail text, in one place.

The scorer's validator (:mod:`streams.validation`), the processor (``late``,
``duplicate_event_id``) and any other validator of the same records (a vectorised one for
replay, say) build their rejections here, so a record refused online and offline carries
the same reason and the same words: :data:`TEXTS` holds each kind's reason (one of
:data:`streams.records.DLQ_REASONS`) and detail template, :func:`rejection` fills it in.

>>> rejection("missing_field", "amount")
Rejection(reason='missing_field', detail='amount: field required')
>>> rejection("below_minimum", "amount", -1.0, minimum=0.0).detail
'amount: -1.0 is below the minimum 0.0'
>>> rejection("before_min_time", "ts", 1767225600, time_format="epoch_ms").detail
'ts: 1767225600 is before min_time_ms (looks like seconds, time_format is epoch_ms)'
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from datetime import datetime
from itertools import pairwise
from typing import Any


@dataclass(frozen=True, slots=True)
class Rejection:
    reason: str
    detail: str


#: Every refusal by kind: its DLQ reason and its detail's template. A template may name
#: ``{name}`` (the field), ``{value}``, ``{r}`` (repr of the value), ``{short}`` (repr cut
#: to 40 characters), ``{type}`` (the value's type name), ``{hint}`` (the unit hint of a
#: time, given ``time_format``) and any keyword the caller passes.
TEXTS: dict[str, tuple[str, str]] = {
    # the payload as a whole
    "too_large": ("too_large", "{size} bytes exceeds max_payload_bytes={limit}"),
    "number_not_representable": ("out_of_range", "not representable: {message}"),
    "malformed_json": ("malformed_json", "not valid JSON: {message}{near}"),
    "not_utf8": ("malformed_json", "not valid UTF-8 at byte {at}"),
    "nested_too_deeply": ("malformed_json", "not valid JSON: nested too deeply"),
    "not_an_object": ("not_an_object", "expected a JSON object, got {type}"),
    "unknown_fields": ("unknown_field", "{name}: {what}"),
    "missing_field": ("missing_field", "{name}: field required"),
    # identifiers and the group
    "not_an_id": ("wrong_type", "{name}: expected a string or integer id, got {r}"),
    "id_length": ("out_of_range", "{name}: an id must have 1 to 256 characters"),
    "group_not_a_string": ("wrong_type", "{name}: expected a string, got {r}"),
    # typed attributes
    "expected_number": ("wrong_type", "{name}: expected a number, got {type}"),
    "float_overflow": ("out_of_range", "{name}: {value} does not fit a float"),
    "expected_integer": ("wrong_type", "{name}: expected an integer, got {short}"),
    "int_overflow": ("out_of_range", "{name}: {short} does not fit 64 bits"),
    "expected_bool": ("wrong_type", "{name}: expected true or false, got {r}"),
    "expected_string": ("wrong_type", "{name}: expected a string, got {type}"),
    "not_allowed": ("out_of_range", "{name}: {r} is not one of {values}"),
    "below_minimum": ("out_of_range", "{name}: {r} is below the minimum {minimum}"),
    "above_maximum": ("out_of_range", "{name}: {r} is above the maximum {maximum}"),
    # times
    "before_min_time": ("bad_timestamp", "{name}: {short} is before min_time_ms{hint}"),
    "too_far_ahead": ("bad_timestamp",
                      "{name}: {short} is more than max_future ahead of receipt{hint}"),
    "expected_iso": ("wrong_type", "{name}: expected an ISO-8601 string, got {r}{hint}"),
    "not_iso": ("bad_timestamp", "{name}: {r} is not ISO-8601"),
    "no_utc_offset": ("bad_timestamp", "{name}: {r} has no UTC offset (add Z or +HH:MM)"),
    "expected_time_number": ("wrong_type",
                             "{name}: expected a number ({time_format}), got {short}{hint}"),
    "implausible_time": ("bad_timestamp", "{name}: {short} is not a plausible time"),
    "not_finite": ("wrong_type", "{name}: expected a finite number, got {r}"),
    "epoch_ms_not_whole": ("wrong_type", "{name}: epoch_ms must be a whole number, got {r}"),
    # in the processor: order and repeats
    "late": ("late", "{name}={value} is more than allowed_lateness behind the partition "
                     "watermark {watermark_ms}"),
    "duplicate_event_id": ("duplicate_event_id", "{name}={short_id} was already scored "
                                                 "(partition {partition}, offset {offset})"),
    # labels
    "not_a_label": ("wrong_type", "label: expected 0, 1, true or false, got {short}"),
}


def rejection(kind: str, name: str = "", value: Any = None, **extra: Any) -> Rejection:
    """The :class:`Rejection` of ``kind`` (a key of :data:`TEXTS`) for field ``name``."""
    reason, template = TEXTS[kind]
    fields = {"name": name, "value": value, **extra}
    if "{r}" in template:
        fields["r"] = repr(value)
    if "{short}" in template:
        fields["short"] = short(value)
    if "{type}" in template:
        fields["type"] = type(value).__name__
    if "{hint}" in template:
        fields["hint"] = unit_hint(value, extra["time_format"])
    if "{short_id}" in template:
        fields["short_id"] = repr(value[:80])
    return Rejection(reason, template.format(**fields))


# -- helpers for the texts ----------------------------------------------------------------

#: Epoch numbers by magnitude: from 1e8 (1973 in seconds) each unit is 1000 times the last.
_UNITS = ((1e8, "seconds"), (1e11, "milliseconds"), (1e14, "microseconds"),
          (1e17, "nanoseconds"), (1e20, None))
_FORMAT_UNIT = {"epoch_seconds": "seconds", "epoch_ms": "milliseconds"}


def is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def unit_hint(value: Any, time_format: str) -> str:
    """``" (looks like seconds, time_format is epoch_ms)"`` when a time looks written in
    another unit or format than the configured one; ``""`` otherwise.

    >>> unit_hint(1767225600, "epoch_ms")
    ' (looks like seconds, time_format is epoch_ms)'
    >>> unit_hint("2026-01-01T00:00:00", "epoch_ms")
    ' (looks like ISO-8601, time_format is epoch_ms)'
    >>> unit_hint(1767225600000, "epoch_ms")
    ''
    """
    looks = None
    if is_number(value) and math.isfinite(value):
        for (low, unit), (high, _) in pairwise(_UNITS):
            if low <= abs(value) < high:
                looks = f"epoch {unit}" if time_format == "iso8601" else unit
        if looks == _FORMAT_UNIT.get(time_format):
            looks = None
    elif isinstance(value, str) and time_format != "iso8601":
        text = value.strip()
        if text.lstrip("-").replace(".", "", 1).isdigit():
            looks = "a number written as text"
        else:
            try:
                datetime.fromisoformat(text.replace("Z", "+00:00"))
                looks = "ISO-8601"
            except ValueError:
                looks = None
    return f" (looks like {looks}, time_format is {time_format})" if looks else ""


def near(raw: bytes, message: str) -> str:
    """The text around the byte a decode error names, so the detail shows what is wrong."""
    found = re.search(r"\(byte (\d+)\)", message)
    if found is None:
        return ""
    at = int(found.group(1))
    return f" near {raw[max(0, at - 12):at + 12].decode('utf-8', 'replace')!r}"


def short(value: Any, limit: int = 40) -> str:
    """``repr`` cut to ``limit`` characters: details name values, not megabytes of them."""
    text = repr(value)
    return text if len(text) <= limit else f"{text[:limit]}... ({len(text)} characters)"
