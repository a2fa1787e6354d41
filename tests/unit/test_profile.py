"""The drift reference profile: compact, exact counts, and a JSON round trip."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from mlops_ops.core.drift import OTHER, PROFILE_VERSION, ReferenceProfile, build_reference_profile
from mlops_ops.example.churn import CATEGORICAL, NUMERIC, generate


@pytest.fixture(scope="module")
def churn() -> pd.DataFrame:
    return generate(2000, seed=4)


@pytest.fixture(scope="module")
def profile(churn) -> ReferenceProfile:
    return build_reference_profile(churn, numeric=NUMERIC, categorical=CATEGORICAL)


def round_trip(profile: ReferenceProfile) -> ReferenceProfile:
    return ReferenceProfile.from_dict(json.loads(json.dumps(profile.to_dict())))


def test_the_profile_round_trips_through_json(profile):
    again = round_trip(profile)
    assert again.to_dict() == profile.to_dict()
    assert again.columns == profile.columns == [*NUMERIC, *CATEGORICAL]
    assert again.rows == 2000


def test_kinds_are_inferred_from_dtypes_by_default(churn):
    profile = build_reference_profile(churn)
    assert set(profile.numeric) == {*NUMERIC, "churned"}
    assert set(profile.categorical) == set(CATEGORICAL)


def test_numeric_bin_counts_sum_to_the_non_missing_count(profile, churn):
    for col in NUMERIC:
        p = profile.numeric[col]
        assert p.n == int(churn[col].notna().sum()), col
        assert sum(p.counts) == p.n, col
        assert len(p.edges) == len(p.counts) + 1, col
        assert p.edges == sorted(p.edges), col
        assert p.edges[0] == p.min == churn[col].min(), col
        assert p.edges[-1] == p.max == churn[col].max(), col


def test_quantile_bins_hold_about_equal_counts(profile):
    counts = profile.numeric["monthly_charges"].counts
    assert len(counts) == 20
    assert max(counts) < 2 * min(counts)


def test_moments(profile, churn):
    p = profile.numeric["monthly_charges"]
    assert p.mean == pytest.approx(churn["monthly_charges"].mean())
    assert p.std == pytest.approx(churn["monthly_charges"].std(ddof=1))


def test_missing_rates(profile, churn):
    usage = profile.numeric["data_usage_gb"]
    assert usage.missing == int(churn["data_usage_gb"].isna().sum()) > 0
    assert usage.missing_rate == pytest.approx(churn["data_usage_gb"].isna().mean())
    region = profile.categorical["region"]
    assert region.missing == int(churn["region"].isna().sum()) > 0
    assert region.missing_rate == pytest.approx(churn["region"].isna().mean())
    assert profile.numeric["tenure_months"].missing_rate == 0.0
    assert profile.categorical["contract"].missing_rate == 0.0


def test_missing_rates_on_a_small_frame():
    frame = pd.DataFrame({"x": [1.0, np.nan, 3.0, np.nan], "c": ["a", None, "b", "a"]})
    profile = build_reference_profile(frame)
    assert profile.numeric["x"].missing_rate == 0.5
    assert profile.categorical["c"].missing_rate == 0.25
    assert profile.categorical["c"].counts == {"a": 2, "b": 1}


def test_infinite_values_count_as_missing():
    profile = build_reference_profile(pd.DataFrame({"x": [1.0, np.inf, 2.0, -np.inf]}))
    p = profile.numeric["x"]
    assert (p.n, p.missing, p.min, p.max) == (2, 2, 1.0, 2.0)


def test_category_counts(profile, churn):
    contract = profile.categorical["contract"]
    assert contract.counts == {str(k): int(v) for k, v in churn["contract"].value_counts().items()}
    assert contract.n == 2000


def test_many_categories_get_an_other_bucket():
    values = [f"c{i:03d}" for i in range(120) for _ in range(i + 1)]  # c119 is the most frequent
    frame = pd.DataFrame({"city": values})
    profile = build_reference_profile(frame, categorical=["city"], max_categories=10)
    p = profile.categorical["city"]
    assert len(p.counts) == 11
    assert OTHER in p.counts
    assert set(p.counts) - {OTHER} == {f"c{i:03d}" for i in range(110, 120)}
    assert sum(p.counts.values()) == p.n == len(values)
    assert p.counts[OTHER] == sum(range(1, 111))


def test_no_other_bucket_at_the_limit():
    frame = pd.DataFrame({"c": list("abcde")})
    assert OTHER not in build_reference_profile(frame, max_categories=5).categorical["c"].counts


def test_an_all_missing_numeric_column_does_not_crash():
    frame = pd.DataFrame({"x": [np.nan] * 5, "y": [1.0, 2.0, 3.0, 4.0, 5.0]})
    profile = build_reference_profile(frame)
    p = profile.numeric["x"]
    assert (p.n, p.missing, p.edges, p.counts) == (0, 5, [], [])
    assert p.missing_rate == 1.0
    again = round_trip(profile).numeric["x"]
    assert (again.n, again.missing) == (0, 5)
    assert again.mean is None  # strict JSON: no statistic of an empty column


def test_an_all_missing_numeric_column_is_strict_json():
    profile = build_reference_profile(pd.DataFrame({"x": [np.nan] * 5}))
    json.dumps(profile.to_dict(), allow_nan=False)


def test_an_empty_frame_does_not_crash():
    profile = build_reference_profile(pd.DataFrame({"x": pd.Series([], dtype="float64")}))
    assert profile.rows == 0
    assert profile.numeric["x"].missing_rate == 0.0


def test_a_constant_column_gives_one_bin():
    profile = build_reference_profile(pd.DataFrame({"k": [3.0] * 50}))
    p = profile.numeric["k"]
    assert p.edges == [3.0]
    assert p.counts == [50]
    assert (p.min, p.max, p.std) == (3.0, 3.0, 0.0)


def test_a_large_profile_stays_small():
    rng = np.random.default_rng(0)
    n = 100_000
    frame = pd.DataFrame({f"x{i}": rng.lognormal(size=n) for i in range(7)})
    frame["ints"] = rng.integers(0, 1_000_000, size=n)
    frame["city"] = pd.array(rng.integers(0, 5000, size=n).astype(str), dtype="string")
    frame["plan"] = pd.array(rng.choice(["basic", "plus", "pro"], size=n), dtype="string")
    profile = build_reference_profile(frame)
    doc = profile.to_dict()
    sizes = {
        col: len(json.dumps(d).encode())
        for kind in ("numeric", "categorical")
        for col, d in doc[kind].items()
    }
    assert len(sizes) == 10
    assert max(sizes.values()) < 5_000, sizes
    assert len(json.dumps(doc).encode()) < 10 * 5_000
    assert len(profile.categorical["city"].counts) == 51  # 50 categories + other


def test_an_unknown_version_is_rejected(profile):
    doc = profile.to_dict()
    assert doc["version"] == PROFILE_VERSION
    for version in (PROFILE_VERSION + 1, None, "1"):
        with pytest.raises(ValueError, match=f"unsupported reference profile version {version!r}"):
            ReferenceProfile.from_dict({**doc, "version": version})
