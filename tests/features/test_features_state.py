"""Entity state as plain data: encoding changes no feature, any bytes decode to a usable
state or StateDecodeError, one buffer per (field, window), and a size that plateaus."""

from __future__ import annotations

import math
from pathlib import Path

import msgspec
import pytest
from feature_streams import LATENESS_MS, event_streams, every_feature
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from features import FeatureEngine, FeatureSet, StateDecodeError
from features.codec import FORMAT_VERSION
from features.spec import Feature
from tests.support import max_examples

FEATURES = every_feature()
ENGINE = FeatureEngine(FEATURES, LATENESS_MS)
QUICKSTART = Path(__file__).parents[2] / "examples" / "quickstart.yaml"


def _outputs(events, every: int | None) -> list[dict]:
    states, out = {}, []
    for n, (entity, ts, attrs) in enumerate(events, start=1):
        state = states.setdefault(entity, ENGINE.new_state())
        out.append(ENGINE.apply(state, ts, attrs))
        if every and n % every == 0:
            states = {e: ENGINE.decode_state(ENGINE.encode_state(s)) for e, s in states.items()}
    return out


def _same(a: dict, b: dict) -> bool:
    return all(
        (x is None and y is None) or x == y or (isinstance(x, float) and math.isnan(x)
                                                 and isinstance(y, float) and math.isnan(y))
        for x, y in zip(a.values(), b.values(), strict=True)
    )


@settings(max_examples=max_examples(60), deadline=None,
          suppress_health_check=[HealthCheck.too_slow])
@given(event_streams(), st.integers(1, 5))
def test_encoding_the_state_every_k_events_changes_no_feature(events, k):
    never, every_k = _outputs(events, None), _outputs(events, k)
    assert all(_same(a, b) for a, b in zip(never, every_k, strict=True))


def _valid_encodings(events) -> list[bytes]:
    state, out = ENGINE.new_state(), [ENGINE.encode_state(ENGINE.new_state())]
    for _, ts, attrs in events:
        if state.max_ts is None or ts >= state.max_ts - LATENESS_MS:
            ENGINE.apply(state, ts, attrs)
            out.append(ENGINE.encode_state(state))
    return out


def _usable_or_refused(raw: bytes) -> None:
    """Either StateDecodeError, or a state the engine can apply events to and encode."""
    try:
        state = ENGINE.decode_state(raw)
    except StateDecodeError:
        return
    ts = 0 if state.max_ts is None else state.max_ts
    for attrs in ({"x": 1.5, "kind": "a"}, {"x": None, "kind": None}):
        out = ENGINE.apply(state, ts, attrs)
        assert not any(isinstance(v, float) and not math.isfinite(v) for v in out.values())
        ts += 11
    ENGINE.decode_state(ENGINE.encode_state(state))


@settings(max_examples=200, deadline=None)
@given(st.binary(max_size=300))
def test_random_bytes_decode_to_a_usable_state_or_state_decode_error(raw):
    _usable_or_refused(raw)


@settings(max_examples=max_examples(150), deadline=None,
          suppress_health_check=[HealthCheck.too_slow])
@given(event_streams(max_events=12), st.data())
def test_mutated_encodings_decode_to_a_usable_state_or_state_decode_error(events, data):
    raw = bytearray(data.draw(st.sampled_from(_valid_encodings(events))))
    for _ in range(data.draw(st.integers(1, 4))):
        at = data.draw(st.integers(0, len(raw) - 1))
        match data.draw(st.sampled_from(["flip", "set", "cut", "insert"])):
            case "flip":
                raw[at] ^= 1 << data.draw(st.integers(0, 7))
            case "set":
                raw[at] = data.draw(st.integers(0, 255))
            case "cut":
                del raw[at:]
                raw = raw or bytearray(b"\x90")
            case "insert":
                raw.insert(at, data.draw(st.integers(0, 255)))
    _usable_or_refused(bytes(raw))


def _header(raw: bytes) -> list:
    return msgspec.msgpack.decode(raw)


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (lambda s: [FORMAT_VERSION + 1, *s[1:]], "format version"),
        (lambda s: [s[0], "0123456789ab", *s[2:]], "feature set"),
        (lambda s: [*s[:2], LATENESS_MS + 1, *s[3:]], "lateness"),
        (lambda s: s[:5], "not an entity state"),
        (lambda s: {"version": 1}, "not an entity state"),
    ],
)
def test_another_version_feature_set_or_shape_is_refused_with_a_reason(change, message):
    state = ENGINE.new_state()
    ENGINE.apply(state, 5, {"x": 1.0, "kind": "a"})
    raw = msgspec.msgpack.encode(change(_header(ENGINE.encode_state(state))))
    with pytest.raises(StateDecodeError, match=message):
        ENGINE.decode_state(raw)


def test_decode_errors_are_value_errors_and_pickles_are_refused():
    import pickle

    state = ENGINE.new_state()
    with pytest.raises(ValueError):
        ENGINE.decode_state(pickle.dumps(state))
    with pytest.raises(StateDecodeError):
        ENGINE.decode_state(b"")


def test_no_pickle_in_the_feature_package():
    package = Path(__file__).parents[2] / "features"
    assert not [p for p in package.rglob("*.py") if "pickle" in p.read_text()]


def test_features_over_one_field_and_window_share_one_buffer():
    hour = {"kind": "sliding", "size": "1h"}
    fs = FeatureSet(features=[
        {"name": f"amount_{agg}", "agg": agg, "field": "amount", "window": hour}
        for agg in ("sum", "mean", "max")
    ] + [{"name": "big_n", "agg": "count", "window": hour,
          "where": {"field": "amount", "op": "gt", "value": 100}}])
    engine = FeatureEngine(fs, allowed_lateness_ms=0)
    state = engine.new_state()
    for i in range(100):
        engine.apply(state, i * 1_000, {"amount": float(i)})
    amount, counted = state.buffers
    assert len(amount) == 100 and amount.values == [float(i) for i in range(100)]
    assert counted.values is None and len(counted) == 0  # nothing matched the filter


def _quickstart() -> FeatureSet:
    import yaml

    raw = yaml.safe_load(QUICKSTART.read_text())
    return FeatureSet(features=[Feature(**f) for f in raw["features"]])


def test_state_stops_growing_once_the_windows_are_full():
    """One entity, 5,000 events a minute apart (3.5 days). The daily tumbling window
    fills and empties every day, so the size is a saw tooth: once the longest window
    (1 d) is full, every day's teeth are the same height."""
    engine = FeatureEngine(_quickstart(), allowed_lateness_ms=300_000)
    state = engine.new_state()
    sizes = []
    for i in range(5_000):
        channel = ("web", "branch", "partner")[i % 3]
        engine.apply(state, 1_700_000_000_000 + i * 60_000,
                     {"amount": 100.0 + i % 97, "income": 5e4, "credit_score": 700,
                      "channel": channel})
        sizes.append(engine.encoded_size(state))
    days = [sizes[d * 1_440:(d + 1) * 1_440] for d in range(1, 4)]
    assert len({max(day) for day in days}) == 1 and len({min(day) for day in days[1:]}) == 1
    assert max(sizes) < 32_000


#: A quickstart entity state as format 1 was first written (the encoder of commit f6a5ad4,
#: before decoding went through one typed pass per feature set): still read, re-encoded
#: byte for byte, and it goes on exactly as a state never encoded.
FORMAT_1_QUICKSTART = bytes.fromhex(
    "9701ac313137356633623334313361ce000493e0ce003d090099940091ce003d09009103c0940094ce000f"
    "4240cd7530cd7530ce002cdc6090c0940094ce000f4240cd7530cd7530ce002cdc609094cb40240000000000"
    "00cb4008000000000000cb4039800000000000cb401c000000000000940091ce003d09009091cb401c000000"
    "000000940094ce000f4240cd7530cd7530ce002cdc609094cb4024000000000000cb4008000000000000cb40"
    "39800000000000cb401c000000000000940091ce003d09009091cb401c000000000000940091ce003d090090"
    "91cb40e86a0000000000940091ce003d0900910391cd02bf940092ce000f4240cd753090c09b910491049504"
    "cb4046c00000000000cb0000000000000000cb0000000000000000cb00000000000000009504cb4046c00000"
    "000000cb0000000000000000cb0000000000000000cb000000000000000092cb4039800000000000cb401c00"
    "00000000009204cb401c0000000000009204cb40e86a00000000009204cb4085f800000000009504cb40a5ec"
    "0000000000cb0000000000000000cb0000000000000000cb000000000000000091029304ce003d0900ce0010"
    "2ca09b9103c0c09503cb4043400000000000cb0000000000000000cb0000000000000000cb00000000000000"
    "00c09203cb40398000000000009203cb40e86a00000000009203cb4085e800000000009503cb40a06e000000"
    "0000cb0000000000000000cb0000000000000000cb0000000000000000c09303ce00102ca0ce000fb770")


def test_a_state_written_by_the_first_format_1_encoder_is_read_and_goes_on_the_same():
    from streams.config import load_config

    config = load_config(QUICKSTART)
    engine = FeatureEngine(config.features, config.event.allowed_lateness_ms)
    events = [(1_000_000, 10.0, "web"), (1_060_000, 25.5, "branch"), (1_030_000, 3.0, "web"),
              (4_000_000, 7.0, "partner"), (4_100_000, 1.0, "web")]
    fresh = engine.new_state()
    outputs = [engine.apply(fresh, ts, {"amount": amount, "income": 50_000.0,
                                        "credit_score": 700 + i, "channel": channel,
                                        "group": "A"})
               for i, (ts, amount, channel) in enumerate(events)]
    old = engine.decode_state(FORMAT_1_QUICKSTART)
    assert engine.encode_state(old) == FORMAT_1_QUICKSTART
    ts, amount, channel = events[-1]
    assert engine.apply(old, ts, {"amount": amount, "income": 50_000.0, "credit_score": 704,
                                  "channel": channel, "group": "A"}) == outputs[-1]
    assert engine.encode_state(old) == engine.encode_state(fresh)
