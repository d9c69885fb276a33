"""The replay's column-wise validation judges every record as the scorer's validator does.

Both validators are held to the shared table of bad records (``tests/bad_events.py``):
the same reason and detail for each, the same values for each accepted record; and the
column checks alone must doubt every record the scorer rejects (they never accept one).
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from streams.config import load_config
from streams.replay import read_events_file
from streams.replay.batches import RawBatch
from streams.replay.checks import BatchValidator
from streams.validation import EventValidator, ValidEvent
from tests.bad_events import BAD_EVENTS, GOOD, NOW_MS
from tests.support import REPO

CONFIG = load_config(REPO / "examples" / "quickstart.yaml")
GOOD_RAW = json.dumps(GOOD).encode()


def _kafka_batch(values: list[bytes]) -> RawBatch:
    n = len(values)
    return RawBatch("kafka", np.arange(n), values=pa.array(values, pa.binary()),
                    partition=np.zeros(n, dtype=np.int64),
                    timestamp_ms=np.full(n, NOW_MS, dtype=np.int64))


def _scalar(raw: bytes, now_ms: int = NOW_MS) -> tuple[str, str] | dict:
    checked = EventValidator(CONFIG.event).validate(raw, now_ms)
    if isinstance(checked, ValidEvent):
        return {"event_id": checked.event_id, "entity_id": checked.entity_id,
                "ts": checked.ts_ms, "group": checked.group, **checked.attrs}
    return checked.reason, checked.detail


def _columnar(batch: RawBatch, wall_ms: int = NOW_MS) -> list[tuple[str, str] | dict]:
    checked = BatchValidator(CONFIG.event).check(batch, wall_ms)
    out: list[tuple[str, str] | dict | None] = [None] * len(batch)
    for i, reason, detail in checked.rejected:
        out[i] = (reason, detail)
    for row in checked.frame.to_dict("records"):
        i = row.pop("_index")
        out[i] = {k: (None if _null(v) else v) for k, v in row.items()}
    assert all(o is not None for o in out)
    return out  # type: ignore[return-value]


def _null(v: object) -> bool:
    return v is None or v is pd.NA or (isinstance(v, float) and math.isnan(v))


def _same(columnar: tuple[str, str] | dict, scalar: tuple[str, str] | dict) -> None:
    if isinstance(scalar, tuple):
        assert columnar == scalar
        return
    assert isinstance(columnar, dict), columnar
    assert {k: v for k, v in scalar.items() if k in columnar} == columnar


@pytest.mark.parametrize(("name", "raw", "reason"), BAD_EVENTS, ids=[r[0] for r in BAD_EVENTS])
def test_both_validators_give_the_tables_reason_and_the_same_detail(name, raw, reason):
    scalar = _scalar(raw)
    assert (None if isinstance(scalar, dict) else scalar[0]) == reason
    # Between good records, in one batch: a bad record spoils nothing around it.
    got = _columnar(_kafka_batch([GOOD_RAW, raw, GOOD_RAW]))
    _same(got[1], scalar)
    _same(got[0], _scalar(GOOD_RAW))
    _same(got[2], _scalar(GOOD_RAW))


def test_column_checks_alone_doubt_every_record_the_scorer_rejects():
    raws = [raw for _, raw, _ in BAD_EVENTS]
    doubted = BatchValidator(CONFIG.event).doubted(_kafka_batch(raws), NOW_MS)
    for (name, _, reason), doubt in zip(BAD_EVENTS, doubted, strict=True):
        if reason is not None:
            assert doubt, name


def test_well_formed_history_never_reaches_the_scorers_validator(monkeypatch):
    validator = BatchValidator(CONFIG.event)

    def refuse(*_: object) -> None:
        raise AssertionError("a well-formed record was judged one by one")

    monkeypatch.setattr(validator.scalar, "validate", refuse)
    # (An id written as a number among ids written as text changes the column's JSON
    # type: such a piece of the batch is judged one by one, so it is left out here.)
    raws = [raw for name, raw, reason in BAD_EVENTS
            if reason is None and name != "integer id"] * 50
    checked = validator.check(_kafka_batch(raws), NOW_MS)
    assert len(checked.frame) == len(raws) and not checked.rejected


def test_the_table_as_a_jsonl_file_reads_as_the_scorer_reads_it(tmp_path: Path):
    path = tmp_path / "events.jsonl"
    path.write_bytes(b"\n".join(raw for _, raw, _ in BAD_EVENTS) + b"\n")
    batch = next(read_events_file(path, CONFIG).batches())
    for got, (_, raw, _) in zip(_columnar(batch), BAD_EVENTS, strict=True):
        _same(got, _scalar(raw))
    assert batch.where(3) == "line 4"


def _flat(raw: bytes) -> dict | None:
    try:
        obj = json.loads(raw)
    except ValueError:
        return None
    if not isinstance(obj, dict) or any(isinstance(v, dict | list) for v in obj.values()):
        return None
    return obj


@pytest.mark.parametrize("suffix", [".csv", ".parquet"])
def test_tabular_files_are_judged_as_their_rows_typed_by_the_config(tmp_path: Path, suffix):
    """Each row as the scorer would see it (typed by the config, then its validator)."""
    rows = [obj for _, raw, _ in BAD_EVENTS if (obj := _flat(raw)) is not None
            and all(abs(v) < 2**63 for v in obj.values() if isinstance(v, int))]
    frame = pd.DataFrame(rows)
    path = tmp_path / f"events{suffix}"
    if suffix == ".csv":
        frame.to_csv(path, index=False)
    else:  # every cell as text (typed Parquet columns: the next test)
        frame.astype(object).map(lambda v: None if _null(v) else str(v)).to_parquet(path)
    source = read_events_file(path, CONFIG)
    batch = next(source.batches())
    got = _columnar(batch, wall_ms=NOW_MS)
    expected = [_scalar(rec.value) for rec in source]
    assert len(got) == len(expected) == len(rows)
    for g, e in zip(got, expected, strict=True):
        _same(g, e)


def test_typed_parquet_columns_are_judged_as_their_rows(tmp_path: Path):
    rows = [dict(GOOD, event_id=f"e{i}") for i in range(6)]
    rows[1]["amount"], rows[2]["credit_score"], rows[3]["channel"] = None, 900, "fax"
    rows[4]["ts"] = NOW_MS // 1000
    frame = pd.DataFrame(rows).astype({"credit_score": "Int64"})
    frame["event_time"] = pd.to_datetime(frame["ts"], unit="ms", utc=True)
    frame.drop(columns="ts").rename(columns={"event_time": "ts"}).to_parquet(
        tmp_path / "typed.parquet")
    source = read_events_file(tmp_path / "typed.parquet", CONFIG)
    got = _columnar(next(source.batches()))
    for g, rec in zip(got, source, strict=True):
        _same(g, _scalar(rec.value))
    assert [g[0] if isinstance(g, tuple) else None for g in got] == [
        None, "missing_field", "out_of_range", "out_of_range", "bad_timestamp", None]


values = st.one_of(st.none(), st.booleans(), st.integers(-10**20, 10**20),
                   st.floats(allow_nan=False, allow_infinity=False), st.text(max_size=6),
                   st.sampled_from(["web", "branch", "26-40", "A", "300", "1e3", " 7 "]))


@settings(max_examples=200, deadline=None)
@given(events=st.lists(st.fixed_dictionaries(
    {**{k: st.one_of(st.just(v), values) for k, v in GOOD.items()},
     "ts": st.one_of(st.integers(NOW_MS - 10**12, NOW_MS + 10**12), values)},
    optional={"age_band": values}),
    min_size=1, max_size=12))
def test_any_json_events_get_the_scorers_verdict_and_values(events):
    raws = [json.dumps(e).encode() for e in events]
    for got, raw in zip(_columnar(_kafka_batch(raws)), raws, strict=True):
        _same(got, _scalar(raw))
