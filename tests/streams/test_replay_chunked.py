"""Replay cut by entity (bounded memory) gives exactly the rows of one replay in memory."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from streams.config import load_config
from streams.replay import RawRecord, read_events_file, replay
from streams.replay.history import output_columns
from streams.replay.pipeline import plan_buckets, replay_parts
from streams.replay.to_files import replay_to_files
from tests.support import REPO, max_examples

QUICKSTART = load_config(REPO / "examples" / "quickstart.yaml")
T0 = 1_767_225_600_000  # 2026-01-01T00:00:00Z
MINUTE = 60_000

WINDOWS = [None, {"kind": "tumbling", "size": "1h"},
           {"kind": "hopping", "size": "2h", "hop": "30m"},
           {"kind": "sliding", "size": "45m"}]
AGGS = ["count", "sum", "mean", "max", "min", "last", "first", "variance",
        "count_distinct", "seconds_since_previous"]


def _config(window: dict | None, lateness_minutes: int, filtered: bool):
    features = []
    for agg in AGGS:
        spec: dict = {"name": f"f_{agg}", "agg": agg}
        if agg not in ("count", "seconds_since_previous"):
            spec["field"] = "amount" if agg != "count_distinct" else "channel"
        if window is not None:
            spec["window"] = window
        if filtered:
            spec["where"] = {"field": "channel", "op": "eq", "value": "web"}
        features.append(spec)
    data = QUICKSTART.model_dump(by_alias=True, mode="json")
    data["features"] = features
    data["event"]["allowed_lateness"] = f"{lateness_minutes}m"
    data["monitors"]["drift"]["features"] = []
    return type(QUICKSTART).model_validate(data)


def _records(rows: list[tuple[int, int, float | None, str]]) -> list[RawRecord]:
    out = []
    for i, (entity, minute, amount, channel) in enumerate(rows):
        event = {"event_id": f"e{i}", "entity_id": f"u{entity}", "ts": T0 + minute * MINUTE,
                 "income": 1000.0, "credit_score": 700, "channel": channel, "group": "A"}
        event["amount"] = 0.5 if amount is None else amount
        out.append(RawRecord(json.dumps(event).encode(), None, i, None, line=i + 1))
    return out


history = st.lists(
    st.tuples(st.integers(0, 6), st.integers(0, 400),
              st.one_of(st.none(), st.floats(-1e6, 1e6, allow_nan=False)),
              st.sampled_from(["web", "branch", "partner"])),
    min_size=1, max_size=80)


@settings(max_examples=max_examples(60), deadline=None,
          suppress_health_check=[HealthCheck.too_slow])
@given(rows=history, window=st.sampled_from(WINDOWS), lateness=st.sampled_from([1, 10, 90]),
       buckets=st.integers(2, 9), order=st.sampled_from(["arrival", "event-time"]),
       filtered=st.booleans())
def test_replay_cut_in_entity_buckets_equals_one_replay_exactly(
        rows, window, lateness, buckets, order, filtered) -> None:
    config = _config(window, lateness, filtered)
    records = _records(rows)
    whole = replay(config, records, order=order)
    cut = replay(config, records, order=order, buckets=buckets)
    pd.testing.assert_frame_equal(cut.frame, whole.frame, check_exact=True)
    assert cut.rejected == whole.rejected
    assert cut.received == whole.received == len(rows)


hot_history = st.lists(
    st.tuples(st.one_of(st.just(0), st.just(0), st.integers(1, 5)), st.integers(0, 400),
              st.one_of(st.none(), st.floats(-1e6, 1e6, allow_nan=False)),
              st.sampled_from(["web", "branch", "partner"])),
    min_size=1, max_size=90)


@settings(max_examples=max_examples(60), deadline=None,
          suppress_health_check=[HealthCheck.too_slow])
@given(rows=hot_history, window=st.sampled_from(WINDOWS),
       lateness=st.sampled_from([1, 10, 90]), bucket_events=st.integers(2, 30),
       buckets=st.sampled_from([None, 1, 3]), order=st.sampled_from(["arrival", "event-time"]),
       filtered=st.booleans())
def test_replay_in_chunks_with_a_hot_entity_equals_one_replay_exactly(
        rows, window, lateness, bucket_events, buckets, order, filtered) -> None:
    """Buckets of at most ``bucket_events`` events: larger ones are cut again, and entity
    u0 (about half of the history) is replayed chunk by chunk with its state carried
    (sorted on disk first, for event time)."""
    config = _config(window, lateness, filtered)
    records = _records(rows)
    whole = replay(config, records, order=order)
    cut = replay(config, records, order=order, buckets=buckets or 1,
                 bucket_events=bucket_events)
    pd.testing.assert_frame_equal(cut.frame, whole.frame, check_exact=True)
    assert cut.rejected == whole.rejected


def test_a_hot_entity_is_replayed_in_chunks_with_its_state_carried() -> None:
    rows = [(0 if i % 4 else 1 + i % 7, i + (i * 7) % 5, float(i % 11), "web")
            for i in range(400)]
    records = _records(rows)
    config = _config({"kind": "sliding", "size": "45m"}, 10, False)
    for order in ("arrival", "event-time"):
        outcome, parts = replay_parts(config, records, order=order, bucket_events=40,
                                      attributes=output_columns(config))
        frames = list(parts)
        assert outcome.cuts.hot_entities == 1 and outcome.cuts.hot_events > 200
        assert max(len(f) for f in frames) <= 40  # no piece larger than a bucket
        got = pd.concat(frames).sort_values("_seq").drop(columns="_seq")
        expected = replay(config, records, order=order).frame
        pd.testing.assert_frame_equal(got.reset_index(drop=True), expected,
                                      check_exact=True)


def test_replay_to_files_in_buckets_writes_the_rows_of_one_replay(tmp_path: Path) -> None:
    rows = [(i % 37, (i * 7) % 500, float(i % 13), ["web", "branch"][i % 2])
            for i in range(3000)]
    path = tmp_path / "events.jsonl"
    path.write_bytes(b"\n".join(r.value for r in _records(rows)) + b"\n")
    whole = replay(QUICKSTART, read_events_file(path, QUICKSTART)).frame
    out = tmp_path / "out.parquet"
    result = replay_to_files(QUICKSTART, read_events_file(path, QUICKSTART), {None: out},
                             buckets=6, rejects=tmp_path / "rejects.csv")
    assert result.buckets == 6 and result.spilled_bytes > 0
    written = pd.read_parquet(out)
    import pyarrow.parquet as pq

    assert pq.ParquetFile(out).num_row_groups == 6  # one row group per bucket
    written = written.set_index("event_id").loc[whole["event_id"]].reset_index()
    pd.testing.assert_frame_equal(written, whole, check_dtype=False, check_exact=True)
    assert result.rows == len(whole) and result.rejected == {"late": 3000 - len(whole)}
    # the peak RSS of each phase is recorded: the first pass, then each bucket's replay
    assert [events for events, _ in result.bucket_peaks] == \
        [n for n in _bucket_sizes(whole, 6) if n]
    assert all(peak > 0 for _, peak in result.bucket_peaks)
    assert result.first_pass_peak_bytes > 0
    assert result.peak_rss_bytes >= max(peak for _, peak in result.bucket_peaks)
    rejects = pd.read_csv(tmp_path / "rejects.csv")
    assert len(rejects) == result.rejected["late"]
    assert rejects["where"].str.startswith("line ").all()


def _bucket_sizes(rows: pd.DataFrame, buckets: int) -> list[int]:
    from streams.replay.partition import entity_bucket

    keys = entity_bucket(rows["entity_id"].to_numpy(), buckets, 0)
    return pd.Series(keys).value_counts().reindex(range(buckets), fill_value=0).tolist()


def test_a_budget_below_what_the_process_uses_is_refused_with_what_it_needs() -> None:
    with pytest.raises(ValueError, match=r"leaves nothing.*give at least \d+ MiB"):
        plan_buckets(1_000, 100 << 20, used_bytes=200 << 20)


def test_buckets_grow_with_events_for_a_fixed_budget() -> None:
    small = plan_buckets(2_000_000, 1 << 30, used_bytes=250 << 20)
    large = plan_buckets(10_000_000, 1 << 30, used_bytes=250 << 20)
    assert 1 <= small < large


def test_rejects_are_written_as_they_come_and_the_reference_rows_are_bounded(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import streams.replay.accepted as accepted
    import streams.replay.to_files as to_files

    rows = [(i % 5, (i * 37) % 700, float(i % 13), "web") for i in range(600)]
    records = _records(rows)
    records += [RawRecord(b"{not json", None, 600 + i, None, line=601 + i) for i in range(30)]
    held = []
    monkeypatch.setattr(accepted, "REJECTS_HELD", 4)  # many pieces
    sink = to_files.rejects_frame
    monkeypatch.setattr(to_files, "rejects_frame", lambda r: held.append(len(r)) or sink(r))
    monkeypatch.setattr(to_files, "REFERENCE_ROWS", 50)
    out = tmp_path / "rejects.parquet"
    result = replay_to_files(QUICKSTART, records, {None: tmp_path / "x.parquet"},
                             rejects=out, reference_features=True, bucket_events=100,
                             order="event-time")
    written = pd.read_parquet(out)
    assert len(written) == sum(result.rejected.values()) > 8 and len(held) > 2
    assert max(held) <= 4 + 1  # never more than the pieces held (and one flush)
    assert set(written["reason"]) == set(result.rejected)
    assert written["where"].is_unique
    assert result.reference_sampled and len(result.reference) == 50
    all_rows = replay(QUICKSTART, records, order="event-time").frame[
        QUICKSTART.features.names]
    assert len(all_rows) == 600
    merged = result.reference.merge(all_rows.drop_duplicates(), how="left", indicator=True)
    assert (merged["_merge"] == "both").all()  # every sampled row is a real row


@pytest.mark.parametrize("parts", [1, 3, 7])
def test_labels_on_disk_by_event_id_join_as_labels_in_memory(tmp_path: Path,
                                                             parts: int) -> None:
    from streams.replay import read_labels_file
    from streams.replay.labels import SpilledLabels
    from streams.replay.sources import iter_labels_file

    rows = [(i % 9, i, float(i % 13), ["web", "branch"][i % 2]) for i in range(500)]
    records = _records(rows)
    labels = tmp_path / "labels.jsonl"
    lines = [json.dumps({"event_id": f"e{i}", "label": i % 2, "ts": T0 + i * MINUTE + 5})
             for i in range(0, 520, 3)]  # some for events that do not exist
    lines += [json.dumps({"event_id": f"e{i}", "label": 1 - i % 2, "ts": T0})
              for i in range(0, 60, 6)]  # second labels: the first one wins
    labels.write_text("\n".join(lines) + "\n")
    expected = replay(QUICKSTART, records, labels=read_labels_file(labels),
                      order="event-time").frame
    spilled = SpilledLabels(iter_labels_file(labels, rows=40), parts, str(tmp_path))
    try:
        assert spilled.rows == len(lines)
        out = tmp_path / "out.parquet"
        result = replay_to_files(QUICKSTART, records, {None: out}, labels=spilled,
                                 order="event-time", bucket_events=120)
    finally:
        spilled.close()
    got = pd.read_parquet(out).set_index("event_id").loc[expected["event_id"]].reset_index()
    assert result.rows == len(expected) == 167
    pd.testing.assert_frame_equal(got, expected, check_dtype=False, check_exact=True)
