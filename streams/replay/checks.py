"""The scorer's validation rules applied to a whole batch at once, column by column.

:class:`BatchValidator` judges a :class:`~streams.replay.batches.RawBatch` with Arrow and
numpy: required fields, declared types, ranges and allowed values (each read from the
config's :class:`~streams.config.Attribute`), identifiers, time parsing and its bounds
(``min_time_ms``, ``max_future``), payload size and unknown fields. It accepts a record
only when the scorer's :class:`~streams.validation.EventValidator` would, with the same
values. A record any column check doubts is handed, alone, to that validator itself: it
decides, and its reason and detail are the ones reported (so a rejection reads exactly as
the worker's DLQ record does, and the rules have one home). Well-formed history never
leaves the columns; only rejected or unusual records are looked at one by one.

A tabular file is read as :func:`~streams.replay.sources.read_events_file` always read it
(a numeric field's text is its number, ``true``/``false`` a bool, a code stored as a
number its text); JSON values keep JSON's types (``"3"`` is not a number).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.json as pa_json

from streams.config import Attribute, EventSchema
from streams.replay.batches import RawBatch
from streams.validation import EventValidator, ValidEvent

#: Integers beyond int64 do not survive a float intact (the scalar validator's bound).
_INT64 = 2**63 - 1
#: Floats are exact integers below this: an int read as a float is trusted only here.
_EXACT_INT = 2**53
_INT_TEXT = r"^[+-]?[0-9]{1,18}$"
_FLOAT_TEXT = r"^[+-]?([0-9]+\.?[0-9]*|\.[0-9]+)([eE][+-]?[0-9]+)?$"
#: An offset-qualified ISO-8601 time the column parser reads as ``fromisoformat`` does.
_ISO_TEXT = (r"^[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}(\.[0-9]{1,6})?"
             r"(Z|[+-][0-9]{2}:[0-9]{2})$")
#: Smallest piece of a JSON batch parsed on its own when a larger piece does not parse.
_PIECE_ROWS = 32


@dataclass
class Column:
    """One field of a batch, checked: values, which cells are null, which rows are doubted."""

    values: np.ndarray | pa.Array  # text stays in Arrow
    null: np.ndarray
    doubt: np.ndarray


@dataclass
class CheckedBatch:
    """A batch judged: the accepted events (``_index``: row in the batch) and rejections."""

    frame: pd.DataFrame
    #: ``(row in the batch, reason, detail)``, from the scorer's validator.
    rejected: list[tuple[int, str, str]] = field(default_factory=list)


def _kinds(t: pa.DataType) -> str:
    if pa.types.is_boolean(t):
        return "bool"
    if pa.types.is_integer(t):
        return "int"
    if pa.types.is_floating(t):
        return "float"
    if pa.types.is_string(t) or pa.types.is_large_string(t):
        return "text"
    if pa.types.is_timestamp(t):
        return "time" if t.tz is not None else "naive_time"
    if pa.types.is_null(t):
        return "null"
    return "other"


def _null(array: pa.Array) -> np.ndarray:
    return array.is_null().to_numpy(zero_copy_only=False)


def _matches(array: pa.Array, pattern: str) -> np.ndarray:
    found = pc.match_substring_regex(array, pattern)
    return found.fill_null(False).to_numpy(zero_copy_only=False)


def _floats(array: pa.Array) -> np.ndarray:
    """As float64; an integer beyond 2**53 rounds (callers doubt those: ``_EXACT_INT``)."""
    return pc.cast(array, pa.float64(), safe=False).fill_null(np.nan).to_numpy(
        zero_copy_only=False)


def _ints(array: pa.Array) -> np.ndarray:
    return pc.cast(array, pa.int64()).fill_null(0).to_numpy(zero_copy_only=False)


def _where(array: pa.Array, keep: np.ndarray) -> pa.Array:
    """``array`` with the cells not in ``keep`` nulled (so a cast cannot fail on them)."""
    return pc.if_else(pa.array(keep), array, pa.nulls(len(array), array.type))


def _text_numbers(array: pa.Array, integral: bool) -> tuple[np.ndarray, np.ndarray]:
    """Numbers written as text: (value as float64, doubted). Integral text is exact."""
    text = pc.utf8_trim_whitespace(array)
    number = _matches(text, _FLOAT_TEXT)
    out = _floats(_where(text, number))
    doubt = ~_null(array) & ~number
    with np.errstate(invalid="ignore"):
        doubt |= number & ~np.isfinite(out)
    if integral:
        whole = _matches(text, _INT_TEXT)
        exact = _ints(_where(text, whole)).astype(np.float64)
        doubt |= number & ~whole & ((out != np.floor(out)) | (np.abs(out) >= _EXACT_INT))
        doubt |= whole & (np.abs(exact) >= _EXACT_INT)
        out = np.where(whole, exact, out)
    return out, doubt


class BatchValidator:
    """The scorer's validation of :class:`~streams.validation.EventValidator`, per column."""

    def __init__(self, schema: EventSchema) -> None:
        self.schema = schema
        self.scalar = EventValidator(schema)
        self.known = {schema.id_field, schema.entity_field, schema.time_field,
                      schema.group_field, *schema.attributes}

    # -- the batch ----------------------------------------------------------------------

    def check(self, batch: RawBatch, wall_ms: int) -> CheckedBatch:
        """Judge every record of ``batch``; files are judged at ``wall_ms`` (receipt)."""
        now = np.full(len(batch), wall_ms, dtype=np.int64)
        if batch.timestamp_ms is not None:  # Kafka: the record's time, as the worker
            now = np.where(batch.timestamp_ms != 0, batch.timestamp_ms, wall_ms)
        frames: list[pd.DataFrame] = []
        doubted: list[np.ndarray] = []
        for rows, table in self._tables(batch):
            frame, doubt = self._check_table(table, now[rows], batch, rows)
            frames.append(frame.assign(_index=rows[~doubt]))
            doubted.append(rows[doubt])
        rest = np.concatenate(doubted) if doubted else np.zeros(0, dtype=np.int64)
        slow, rejected = self._one_by_one(batch, np.sort(rest), now)
        frames.append(slow)
        frame = pd.concat([f for f in frames if len(f)] or frames[-1:], ignore_index=True)
        frame = frame.sort_values("_index", kind="stable", ignore_index=True)
        return CheckedBatch(frame, rejected)

    def doubted(self, batch: RawBatch, wall_ms: int) -> np.ndarray:
        """Which records the column checks alone do not accept (the scorer's validator
        then judges each): every record it rejects, and a few unusual good ones."""
        now = np.full(len(batch), wall_ms, dtype=np.int64)
        out = np.zeros(len(batch), dtype=bool)
        for rows, table in self._tables(batch):
            out[rows] = self._check_table(table, now[rows], batch, rows)[1]
        return out

    def _tables(self, batch: RawBatch) -> list[tuple[np.ndarray, pa.Table | None]]:
        """(rows of the batch, their table); JSON values that do not parse as a table get
        ``None`` (judged one by one)."""
        rows = np.arange(len(batch))
        if batch.table is not None:
            return [(rows, batch.table)]
        assert batch.values is not None
        return _parse_json(batch.values, rows)

    def _one_by_one(self, batch: RawBatch, rows: np.ndarray, now: np.ndarray
                    ) -> tuple[pd.DataFrame, list[tuple[int, str, str]]]:
        """The doubted records through the scorer's validator itself."""
        accepted: list[dict[str, Any]] = []
        rejected: list[tuple[int, str, str]] = []
        for i in rows.tolist():
            rec = batch.record(i, self.schema)
            checked = self.scalar.validate(rec.value, int(now[i]))
            if isinstance(checked, ValidEvent):
                accepted.append({"event_id": checked.event_id, "entity_id": checked.entity_id,
                                 "ts": checked.ts_ms, "group": checked.group,
                                 **checked.attrs, "_index": i})
            else:
                rejected.append((i, checked.reason, checked.detail))
        columns = self.columns()
        frame = pd.DataFrame(accepted, columns=[*columns, "_index"])
        return self._typed_frame(frame), rejected

    def columns(self) -> list[str]:
        """The accepted frame's columns: core fields, then the attributes."""
        s = self.schema
        attrs = [n for n in s.attributes if n != "group"]
        return list(dict.fromkeys(["event_id", "entity_id", "ts", "group", *attrs]))

    def _typed_frame(self, frame: pd.DataFrame) -> pd.DataFrame:
        out = {"event_id": frame["event_id"].astype("str"),
               "entity_id": frame["entity_id"].astype("str"),
               "ts": frame["ts"].astype(np.int64),
               "group": frame["group"].astype("str")}
        for name, attr in self.schema.attributes.items():
            if name != "group":
                out[name] = _as_declared(frame[name], attr)
        out["_index"] = frame["_index"].astype(np.int64)
        return pd.DataFrame(out)

    # -- one parsed table ---------------------------------------------------------------

    def _check_table(self, table: pa.Table | None, now: np.ndarray, batch: RawBatch,
                     rows: np.ndarray) -> tuple[pd.DataFrame, np.ndarray]:
        """The accepted rows of ``table`` (a frame) and which rows are doubted."""
        n = len(rows)
        if table is None:
            return self._typed_frame(pd.DataFrame(
                {c: [] for c in [*self.columns(), "_index"]})), np.ones(n, dtype=bool)
        s = self.schema
        text = batch.table is not None  # tabular: numbers and booleans may be text
        doubt = self._size_doubt(table, batch, rows)
        if not s.allow_unknown_fields:
            for name in table.column_names:
                if name not in self.known:
                    doubt |= self._present(table, name, batch, rows)
        ids = {}
        for name in (s.id_field, s.entity_field):
            col = self._identifier(table, name)
            doubt |= col.doubt | col.null
            ids[name] = col.values
        ts = self._time(table, text, now)
        doubt |= ts.doubt | ts.null
        group = self._text(table, s.group_field, text, None)
        doubt |= group.doubt
        columns: dict[str, Column] = {}
        for name, attr in s.attributes.items():
            col = self._attribute(table, name, attr, text)
            doubt |= col.doubt | (col.null & attr.required)
            columns[name] = col
        keep = ~doubt
        chosen = pa.array(keep)
        out: dict[str, Any] = {"event_id": _strings(ids[s.id_field], chosen),
                               "entity_id": _strings(ids[s.entity_field], chosen),
                               "ts": ts.values[keep].astype(np.int64),
                               "group": _strings(group.values, chosen)}
        for name, attr in s.attributes.items():
            if name != s.group_field:
                out[name] = _kept(columns[name], keep, chosen, attr)
        frame = pd.DataFrame(out)
        return frame[self.columns()], doubt

    def _size_doubt(self, table: pa.Table, batch: RawBatch, rows: np.ndarray) -> np.ndarray:
        limit = self.schema.max_payload_bytes
        if batch.values is not None:
            sizes = pc.binary_length(batch.values.take(pa.array(rows)))
            return sizes.to_numpy(zero_copy_only=False) > limit
        # An upper bound of the JSON the row becomes: names, quotes and escaped text.
        bound = np.full(len(rows), 2, dtype=np.int64)
        for name in table.column_names:
            column = table.column(name).combine_chunks()
            cell = np.full(len(rows), 48, dtype=np.int64)
            if _kinds(column.type) == "text":
                cell = pc.binary_length(column).fill_null(0).to_numpy(
                    zero_copy_only=False).astype(np.int64) * 6 + 2
            elif _kinds(column.type) == "other":
                cell = np.full(len(rows), limit + 1, dtype=np.int64)
            bound += (len(name) * 6 + 4) + cell
        return bound > limit

    def _present(self, table: pa.Table, name: str, batch: RawBatch,
                 rows: np.ndarray) -> np.ndarray:
        """Rows where an unknown field is present (JSON: even as null)."""
        present = ~_null(table.column(name).combine_chunks())
        if batch.values is not None:
            raw = batch.values.take(pa.array(rows))
            key = pc.match_substring(raw.cast(pa.large_binary()), f'"{name}"'.encode()
                                     .decode("latin-1"))
            present |= key.fill_null(False).to_numpy(zero_copy_only=False)
        return present

    def _array(self, table: pa.Table, name: str) -> pa.Array | None:
        if name not in table.column_names:
            return None
        return table.column(name).combine_chunks()

    def _text_values(self, table: pa.Table, name: str, ints: bool) -> Column:
        """A text-valued field: its text (an integer's text too, with ``ints``); a cell
        of any other type is doubted, an absent field is null throughout."""
        array = self._array(table, name)
        n = table.num_rows
        if array is None:
            return Column(pa.nulls(n, pa.string()), np.ones(n, bool), np.zeros(n, bool))
        null = _null(array)
        kind = _kinds(array.type)
        if kind == "text":
            values = array
        elif kind == "int" and ints:
            values = pc.cast(array, pa.string())
        else:  # a null-typed column has no cell to doubt
            return Column(pa.nulls(n, pa.string()), null, ~null)
        return Column(values, null, np.zeros(n, dtype=bool))

    def _identifier(self, table: pa.Table, name: str) -> Column:
        col = self._text_values(table, name, ints=True)
        length = pc.utf8_length(col.values).fill_null(0).to_numpy(zero_copy_only=False)
        col.doubt |= ~col.null & ((length == 0) | (length > 256))
        return col

    def _time(self, table: pa.Table, text: bool, now: np.ndarray) -> Column:
        s = self.schema
        array = self._array(table, s.time_field)
        n = table.num_rows
        if array is None:
            return Column(np.zeros(n, np.int64), np.ones(n, bool), np.zeros(n, bool))
        null = _null(array)
        kind = _kinds(array.type)
        fmt = s.time_format
        ms = np.zeros(n, dtype=np.int64)
        doubt = ~null
        if kind == "time" and fmt != "epoch_seconds":
            micro = pc.cast(array, pa.timestamp("us", "UTC"), safe=False)
            ms = np.floor_divide(micro.cast(pa.int64()).fill_null(0).to_numpy(
                zero_copy_only=False), 1000)
            doubt = np.zeros(n, dtype=bool)
        elif fmt == "iso8601":
            if kind == "text":
                good = _matches(array, _ISO_TEXT)
                parsed = pd.to_datetime(pd.Series(_where(array, good).to_pandas()),
                                        format="ISO8601", utc=True, errors="coerce")
                ok = parsed.notna().to_numpy()
                nanos = parsed.to_numpy(dtype="datetime64[ns]").astype(np.int64)
                ms = np.where(ok, np.floor_divide(nanos, 1_000_000), 0)
                doubt = ~null & ~(good & ok)
        elif kind in ("int", "float") or (kind == "text" and text):
            if kind == "text":
                value, doubt = _text_numbers(array, integral=fmt == "epoch_ms")
            else:
                value = _floats(array)
                doubt = np.zeros(n, dtype=bool)
                if kind == "float" and fmt == "epoch_ms":
                    doubt = ~null & (value != np.floor(value))
            with np.errstate(invalid="ignore"):
                doubt |= ~null & ~(np.abs(value) <= _INT64 // 1000)
            if kind == "int":
                whole = _ints(array)
                ms = whole * 1000 if fmt == "epoch_seconds" else whole
                ms = np.where(doubt | null, 0, ms)
            else:
                safe = np.where(doubt | null, 0.0, value)
                ms = (np.round(safe * 1000) if fmt == "epoch_seconds" else safe).astype(
                    np.int64)
                doubt |= ~null & (np.abs(safe) >= _EXACT_INT) & (fmt == "epoch_ms")
        with np.errstate(invalid="ignore"):
            doubt |= ~null & ((ms < s.min_time_ms) | (ms > now + s.max_future_ms))
        return Column(ms, null, doubt)

    def _text(self, table: pa.Table, name: str, text: bool,
              attr: Attribute | None) -> Column:
        """A ``str`` field (the group, or a str attribute)."""
        col = self._text_values(table, name, ints=text)
        null = col.null
        if attr is not None and attr.values is not None:
            col.doubt |= ~null & ~pc.is_in(col.values, pa.array(attr.values, pa.string())
                                           ).fill_null(False).to_numpy(zero_copy_only=False)
        if attr is not None and (attr.minimum is not None or attr.maximum is not None):
            col.doubt |= ~null
        return col

    def _attribute(self, table: pa.Table, name: str, attr: Attribute, text: bool) -> Column:
        if attr.type == "str":
            return self._text(table, name, text, attr)
        array = self._array(table, name)
        n = table.num_rows
        if array is None:
            return Column(np.zeros(n), np.ones(n, bool), np.zeros(n, bool))
        null = _null(array)
        kind = _kinds(array.type)
        if kind == "null":
            return Column(np.zeros(n), null, np.zeros(n, bool))
        if attr.type == "bool":
            if kind == "bool":
                values = array.fill_null(False).to_numpy(zero_copy_only=False)
                doubt = np.zeros(n, dtype=bool)
            elif kind == "text" and text:
                word = pc.utf8_lower(pc.utf8_trim_whitespace(array))
                values = pc.equal(word, "true").fill_null(False).to_numpy(zero_copy_only=False)
                known = pc.is_in(word, pa.array(["true", "false"])).fill_null(False)
                doubt = ~null & ~known.to_numpy(zero_copy_only=False)
            else:
                return Column(np.zeros(n, bool), null, ~null)
            if attr.values is not None or attr.minimum is not None or attr.maximum is not None:
                doubt = doubt | ~null
            return Column(values, null, doubt)
        integral = attr.type == "int"
        if kind in ("int", "float"):
            value = _floats(array)
            doubt = np.zeros(n, dtype=bool)
            if kind == "float":
                with np.errstate(invalid="ignore"):
                    doubt = ~null & ~np.isfinite(value)
                    if integral:
                        doubt |= ~null & ((value != np.floor(value))
                                          | (np.abs(value) >= _EXACT_INT))
            if integral and kind == "int":
                exact = _ints(array)
                doubt |= ~null & (np.abs(value) >= _EXACT_INT)
                value = exact
        elif kind == "text" and text:
            value, doubt = _text_numbers(array, integral)
            if integral:
                value = np.where(doubt | null, 0, value).astype(np.int64)
        else:
            return Column(np.zeros(n), null, ~null)
        if attr.values is not None:
            doubt = doubt | ~null
        with np.errstate(invalid="ignore"):
            if attr.minimum is not None:
                doubt |= ~null & (value < attr.minimum)
            if attr.maximum is not None:
                doubt |= ~null & (value > attr.maximum)
        return Column(value, null, doubt)


def _strings(values: pa.Array, chosen: pa.Array) -> pd.Series:
    """The chosen cells of a text column, as pandas text (null: NaN)."""
    return values.filter(chosen).cast(pa.string()).to_pandas()


def _kept(col: Column, keep: np.ndarray, chosen: pa.Array, attr: Attribute) -> pd.Series:
    """The kept cells of an attribute column, with its declared type."""
    if attr.type == "str":
        assert isinstance(col.values, pa.Array)
        return _strings(col.values, chosen)
    values, null = np.asarray(col.values)[keep], col.null[keep]
    if attr.type == "float":
        return pd.Series(np.where(null, np.nan, values.astype(np.float64)))
    if attr.type == "int":
        return pd.Series(pd.arrays.IntegerArray(values.astype(np.int64), null))
    out = values.astype(object)
    out[null] = None
    return pd.Series(out)


def _as_declared(column: pd.Series, attr: Attribute) -> pd.Series:
    """An attribute column with its declared type: float64, Int64, str, object (bool)."""
    if attr.type == "float":
        return column.astype(np.float64)
    if attr.type == "int":
        return column.astype("Int64")
    if attr.type == "str":
        return column.astype("str")
    out = column.astype(object)
    return out.where(out.notna(), None)


def _parse_json(values: pa.Array, rows: np.ndarray
                ) -> list[tuple[np.ndarray, pa.Table | None]]:
    """JSON values as tables; a piece that does not parse is halved until it does, down to
    :data:`_PIECE_ROWS` records (those get ``None``: each is judged alone). A value that
    cannot be one line (a raw line break, or blank) is judged alone at once."""
    raw = values.cast(pa.binary())
    odd = (_contains(raw, b"\n") | _contains(raw, b"\r") | ~_utf8(raw)
           if len(raw) else np.zeros(0, dtype=bool))
    if len(raw):
        text = pc.utf8_trim_whitespace(pc.if_else(pa.array(odd), b"x", raw).cast(pa.string()))
        odd |= pc.binary_length(text).fill_null(0).to_numpy(zero_copy_only=False) == 0
    pieces: list[tuple[np.ndarray, pa.Table | None]] = []
    if odd.any():
        pieces.append((rows[odd], None))
        keep = np.flatnonzero(~odd)
        raw, rows = raw.take(pa.array(keep)), rows[keep]
    if len(raw):
        pieces.extend(_parse_pieces(raw, rows))
    return pieces


def _utf8(raw: pa.Array) -> np.ndarray:
    """Which values are valid UTF-8 (the JSON reader does not check strings' bytes)."""
    try:
        raw.cast(pa.string())
        return np.ones(len(raw), dtype=bool)
    except pa.ArrowInvalid:  # rare: find which, one by one
        out = np.ones(len(raw), dtype=bool)
        for i, value in enumerate(raw.to_pylist()):
            try:
                value.decode("utf-8")
            except UnicodeDecodeError:
                out[i] = False
        return out


def _contains(raw: pa.Array, needle: bytes) -> np.ndarray:
    found = pc.match_substring(raw, needle.decode("latin-1"))
    return found.fill_null(False).to_numpy(zero_copy_only=False)


def _parse_pieces(raw: pa.Array, rows: np.ndarray
                  ) -> list[tuple[np.ndarray, pa.Table | None]]:
    try:
        buffer = _joined(raw)
        table = pa_json.read_json(
            pa.BufferReader(buffer),
            read_options=pa_json.ReadOptions(use_threads=False,
                                             block_size=max(1 << 20, buffer.size + 1)),
            parse_options=pa_json.ParseOptions(newlines_in_values=False,
                                               unexpected_field_behavior="infer"))
        if table.num_rows == len(raw):
            return [(rows, table)]
    except pa.ArrowException:  # not JSON, not UTF-8, or types that change within a piece
        pass
    if len(raw) <= _PIECE_ROWS:
        return [(rows, None)]
    half = len(raw) // 2
    return (_parse_pieces(raw.slice(0, half), rows[:half])
            + _parse_pieces(raw.slice(half), rows[half:]))


def _joined(raw: pa.Array) -> pa.Buffer:
    """The values one per line, as one buffer (no Python object per value)."""
    lines = pc.binary_join_element_wise(raw, pa.scalar(b"\n", pa.binary()),
                                        pa.scalar(b"", pa.binary()))
    offsets = np.frombuffer(lines.buffers()[1], dtype=np.int32,
                            count=len(lines) + 1, offset=lines.offset * 4)
    return lines.buffers()[2][int(offsets[0]):int(offsets[-1])]
