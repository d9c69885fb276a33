"""Reference samples, their JSON file, and bins fixed from them."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from monitors import Binning, ReferenceSample, load_reference, write_reference


def test_numeric_bins_are_reference_deciles_closed_on_the_right() -> None:
    sample = ReferenceSample.from_values(list(range(1, 101)))
    b = Binning.from_reference(sample, bins=10, ks_bins=10)
    assert b.edges == pytest.approx(tuple(np.quantile(np.arange(1, 101), np.arange(1, 10) / 10)))
    coarse = b.coarse(b.reference_counts)
    assert coarse[0] == 0  # null bin
    assert coarse[1:].tolist() == [10.0] * 10
    edge = b.edges[0]
    assert b.index(edge) == 1 and b.index(np.nextafter(edge, math.inf)) == 2


def test_psi_bins_are_unions_of_ks_bins() -> None:
    rng = np.random.default_rng(1)
    sample = ReferenceSample.from_values(rng.normal(size=1000).tolist())
    b = Binning.from_reference(sample, bins=10, ks_bins=100)
    assert b.n_bins == 1 + 100  # null + 100 quantile bins
    assert b.n_coarse == 11
    assert np.all(np.diff(b.coarse_of_fine) >= 0)  # fine bins map monotonically
    assert b.coarse(b.reference_counts)[1:] == pytest.approx([100.0] * 10)


def test_point_masses_get_their_own_bin_instead_of_empty_duplicates() -> None:
    sample = ReferenceSample.from_values([0] * 80 + [1] * 15 + [5] * 5)
    b = Binning.from_reference(sample, bins=10, ks_bins=100)
    assert len(set(b.edges)) == len(b.edges)
    assert b.reference_counts.sum() == 100
    assert b.reference_counts[b.index(0)] == 80


def test_nulls_and_unusable_values_count_in_the_null_bin() -> None:
    sample = ReferenceSample.from_values([1.0, None, float("nan"), 2.0])
    b = Binning.from_reference(sample, bins=2, ks_bins=2)
    assert sample.nulls == 2 and b.reference_counts[0] == 2
    assert b.index(None) == b.index(float("nan")) == b.index("oops") == 0


def test_categorical_bins_keep_top_categories_plus_other_and_null() -> None:
    values = ["web"] * 5 + ["branch"] * 3 + ["partner"] * 2 + [None]
    b = Binning.from_reference(ReferenceSample.from_values(values), 10, 100, max_categories=2)
    assert b.kind == "categorical"
    assert b.reference_counts.tolist() == [1.0, 5.0, 3.0, 2.0]  # null, web, branch, other
    assert b.index("partner") == b.index("kiosk") == 3
    assert b.index(None) == 0


def test_large_numeric_references_are_kept_as_a_bounded_quantile_sketch() -> None:
    values = np.random.default_rng(2).exponential(size=50_000).tolist()
    sample = ReferenceSample.from_values(values, max_values=1000)
    assert len(sample.values) == 1000 and sample.count == 50_000
    b = Binning.from_reference(sample, bins=10, ks_bins=100)
    assert b.reference_counts.sum() == pytest.approx(50_000)
    assert b.edges[49] == pytest.approx(np.median(values), rel=0.02)


def test_write_and_load_reference_from_a_dataframe(tmp_path: Path) -> None:
    frame = pd.DataFrame({
        "amount": [1.0, 2.0, None, 4.0],
        "channel": ["web", "web", None, "branch"],
        "n": pd.array([1, None, 3, 4], dtype="Int64"),
        "ts": pd.to_datetime([1, 2, 3, 4], unit="s", utc=True),
    })
    path = tmp_path / "reference.json"
    write_reference(path, frame, scores=[0.2, 0.8, 0.5, 0.1])
    ref = load_reference(path)
    assert set(ref.features) == {"amount", "channel", "n"}  # datetimes are skipped
    assert ref.features["amount"].values == (1.0, 2.0, 4.0)
    assert ref.features["amount"].nulls == 1
    assert ref.features["channel"].categories == {"web": 2, "branch": 1}
    assert ref.features["n"].nulls == 1
    assert ref.prediction is not None and ref.prediction.count == 4


def test_write_reference_can_pick_columns(tmp_path: Path) -> None:
    path = tmp_path / "r.json"
    write_reference(path, {"a": [1, 2], "b": ["x", "y"]}, columns=["a"])
    assert set(load_reference(path).features) == {"a"}
    assert load_reference(path).prediction is None


def test_load_reference_explains_bad_files(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="not found"):
        load_reference(tmp_path / "missing.json")
    (tmp_path / "bad.json").write_text("{nope")
    with pytest.raises(ValueError, match="not JSON"):
        load_reference(tmp_path / "bad.json")
    (tmp_path / "other.json").write_text(json.dumps({"hello": 1}))
    with pytest.raises(ValueError, match="not a streambed reference"):
        load_reference(tmp_path / "other.json")
