"""detect_drift: the API, its inputs, edge cases, the JSON document and the HTML view.

The statistical behaviour (false alarms, power, the effect gate) is in test_drift_stats.py.
"""

from __future__ import annotations

import json
import re

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from scipy import stats

from mlops_ops.core.drift import (
    OTHER,
    ColumnDrift,
    DriftConfig,
    DriftReport,
    ReferenceProfile,
    adjust_p_values,
    build_reference_profile,
    detect_drift,
)
from mlops_ops.core.drift_report import render_drift_html


def frame_of(n: int, seed: int, *, shift: float = 0.0, plus_share: float = 0.3) -> pd.DataFrame:
    """Mixed columns: float, float32, int, a 0/1 flag, text with missing values."""
    rng = np.random.default_rng(seed)
    x = rng.normal(shift, 1.0, n)
    x[rng.random(n) < 0.05] = np.nan
    plan = rng.choice(["basic", "plus", "pro"], size=n, p=[0.7 - plus_share, plus_share, 0.3]).astype(object)
    plan[rng.random(n) < 0.02] = None
    return pd.DataFrame(
        {
            "x": x,
            "x32": rng.gamma(2.0, 1.0 + shift, n).astype("float32"),
            "count": rng.poisson(2.0 + shift, n).astype("int64"),
            "flag": (rng.random(n) < 0.2 + 0.1 * shift).astype("int64"),
            "plan": pd.array(plan, dtype="string"),
        }
    )


@pytest.fixture(scope="module")
def profile() -> ReferenceProfile:
    return build_reference_profile(frame_of(20_000, seed=1))


@pytest.fixture(scope="module")
def drifted_report(profile) -> DriftReport:
    return detect_drift(profile, frame_of(5_000, seed=2, shift=0.5, plus_share=0.1))


def strict_json(doc: dict) -> str:
    return json.dumps(doc, allow_nan=False)


# --------------------------------------------------------------------------- the document


def test_the_report_round_trips_through_strict_json(drifted_report):
    text = strict_json(drifted_report.to_dict())
    again = DriftReport.from_dict(json.loads(text))
    assert again.to_dict() == drifted_report.to_dict()
    assert again == drifted_report
    assert again.config == drifted_report.config
    assert isinstance(again.columns[0], ColumnDrift)


def test_the_report_says_what_drifted_and_why(drifted_report):
    r = drifted_report
    assert r.status == "drift"
    assert r.drifted
    assert r.rows == 5_000
    assert r.reference_rows == 20_000
    assert set(r.drifted_columns) == {"x", "x32", "count", "flag", "plan"}
    assert r.drifted_share == 1.0
    assert r.family_size == 7  # five distribution tests, two missing-rate tests (x, plan)
    assert r.reasons[0] == "5 of 5 columns drifted (rule 'any': one drifted column is a dataset drift)"
    assert any(reason.startswith("'x': KS D=") and ">= delta 0.1" in reason for reason in r.reasons)
    assert any("Jensen-Shannon distance" in reason for reason in r.reasons)
    summary = r.summary()
    assert "\n" not in summary
    assert summary.startswith("drift: 5 of 5 columns drifted (x, x32, count, flag, plan)")
    x = r.column("x")
    assert (x.kind, x.test, x.tested, x.drifted, x.distribution_drifted) == (
        "numeric",
        "ks",
        True,
        True,
        True,
    )
    assert x.p_adjusted >= x.p_value
    assert x.effect_threshold == 0.1
    assert x.missing.tested
    assert not x.missing.drifted
    assert x.rows == int(frame_of(5_000, seed=2, shift=0.5)["x"].notna().sum())
    plan = r.column("plan")
    assert (plan.kind, plan.test, plan.effect_threshold) == ("categorical", "chi2", 0.05)
    assert plan.unseen_share == 0.0


def test_no_drift_on_a_sample_of_the_same_population(profile):
    report = detect_drift(profile, frame_of(5_000, seed=3))
    assert report.status == "no_drift"
    assert not report.drifted
    assert report.drifted_columns == []
    assert report.drifted_share == 0.0
    assert report.reasons == ["none of 5 columns drifted"]
    assert report.summary().startswith("no drift: 0 of 5 columns drifted; 5,000 rows")


def test_a_histogram_is_small_and_lines_up_with_the_profile(drifted_report, profile):
    x = drifted_report.column("x").histogram
    assert x["edges"] == profile.numeric["x"].edges
    assert len(x["reference"]) == len(x["current"]) == len(x["edges"]) - 1
    assert sum(x["current"]) + x["below"] + x["above"] == pytest.approx(1.0)
    plan = drifted_report.column("plan").histogram
    assert plan["categories"] == ["basic", "pro", "plus"]
    assert sum(plan["current"]) == pytest.approx(1.0)
    flag = drifted_report.column("flag").histogram
    assert flag["points"]["values"] == [0.0, 1.0]  # the flag's point masses, for a plot
    assert len(strict_json(drifted_report.to_dict())) < 20_000


# --------------------------------------------------------------------------- inputs


def test_dataframe_table_parquet_path_and_parquet_file_give_identical_reports(profile, tmp_path):
    frame = frame_of(3_000, seed=5, shift=0.3)
    path = tmp_path / "batch.parquet"
    frame.to_parquet(path, index=False, row_group_size=700)  # several chunks per column
    table = pq.read_table(path)
    assert table.column("x").num_chunks > 1
    expected = detect_drift(profile, frame).to_dict()
    assert detect_drift(profile, table).to_dict() == expected
    assert detect_drift(profile, path).to_dict() == expected
    assert detect_drift(profile, str(path)).to_dict() == expected
    assert detect_drift(profile, pq.ParquetFile(path)).to_dict() == expected
    with open(path, "rb") as handle:
        assert detect_drift(profile, handle).to_dict() == expected
    # the same frame through pandas' own Parquet reader (text back as str, ints as int64)
    assert detect_drift(profile, pd.read_parquet(path)).to_dict() == expected


def test_dictionary_and_large_string_categories_count_like_plain_text(profile):
    frame = frame_of(2_000, seed=6)
    expected = detect_drift(profile, frame).to_dict()
    table = pa.Table.from_pandas(frame, preserve_index=False)
    for kind in (pa.large_string(), pa.dictionary(pa.int8(), pa.string())):
        column = table.column("plan").cast(kind)
        other = table.set_column(table.schema.get_field_index("plan"), "plan", column)
        assert detect_drift(profile, other).to_dict() == expected


def test_pandas_categoricals_and_integer_codes_count_like_their_text(tmp_path):
    rng = np.random.default_rng(23)
    codes = rng.integers(0, 4, 3_000).astype(float)
    codes[rng.random(3_000) < 0.1] = np.nan  # an integer column with gaps: pandas holds floats
    frame = pd.DataFrame({"code": codes, "tier": pd.Categorical(rng.choice(["gold", "silver"], 3_000))})
    profile = build_reference_profile(frame, categorical=["code", "tier"])
    # issue 8: one canonical label per category whatever the dtype, "1" (not "1.0")
    assert set(profile.categorical["code"].counts) == {"0", "1", "2", "3"}
    expected = detect_drift(profile, frame).to_dict()
    assert detect_drift(profile, frame.astype({"tier": "string"})).to_dict() == expected
    table = pa.table(
        {
            "code": pa.array(codes, from_pandas=True).cast(pa.int64()),  # nullable ints in Arrow
            "tier": pa.array(frame["tier"].astype(str)).dictionary_encode(),
        }
    )
    assert detect_drift(profile, table).to_dict() == expected
    path = tmp_path / "codes.parquet"
    pq.write_table(table, path)
    assert detect_drift(profile, path).to_dict() == expected


def test_numeric_columns_of_other_types_are_read_like_the_profile_read_them():
    frame = pd.DataFrame({"v": [1.0, 2.0, 3.0, 4.0] * 50})
    profile = build_reference_profile(frame)
    expected = detect_drift(profile, frame).column("v").histogram
    for values in (
        pd.Series([1, 2, 3, 4] * 50, dtype="int32"),
        pd.Series([1, 2, 3, 4] * 50, dtype="Int64"),
        pd.Series(["1", "2", "3", "4"] * 50, dtype="string"),
        pd.Series([1, 2, 3, 4] * 50, dtype="float32"),
    ):
        report = detect_drift(profile, pd.DataFrame({"v": values}))
        assert report.column("v").histogram == expected, values.dtype
        assert report.column("v").statistic == 0.0


def test_a_missing_column_is_a_clear_error(profile):
    frame = frame_of(500, seed=7).drop(columns=["x", "plan"])
    with pytest.raises(ValueError, match=r"missing 2 profile column\(s\): \['x', 'plan'\]") as err:
        detect_drift(profile, frame)
    assert "columns present: ['x32', 'count', 'flag']" in str(err.value)
    with pytest.raises(ValueError, match=r"missing 2 profile column\(s\)"):
        detect_drift(profile, pa.Table.from_pandas(frame, preserve_index=False))


def test_only_the_configured_columns_are_read_and_checked(profile):
    frame = frame_of(1_000, seed=8).drop(columns=["plan"])
    report = detect_drift(profile, frame, DriftConfig(columns=("flag", "x")))
    assert [c.name for c in report.columns] == ["x", "flag"]  # profile order
    with pytest.raises(ValueError, match=r"DriftConfig.columns \['nope'\] are not in the reference profile"):
        detect_drift(profile, frame, DriftConfig(columns=("nope",)))
    with pytest.raises(ValueError, match=r"critical_columns \['nope'\] are not in the reference profile"):
        detect_drift(profile, frame_of(1_000, seed=8), DriftConfig(critical_columns=("nope",)))


def test_wrong_input_types_are_rejected(profile):
    with pytest.raises(TypeError, match="drift data must be a pandas DataFrame.*got list"):
        detect_drift(profile, [1, 2, 3])
    with pytest.raises(TypeError, match="profile must be a ReferenceProfile"):
        detect_drift(profile.to_dict(), frame_of(10, seed=0))  # type: ignore[arg-type]


def test_a_column_twice_in_the_data_is_an_error(profile):
    frame = frame_of(300, seed=9)
    twice = pd.concat([frame, frame[["x"]]], axis=1)
    with pytest.raises(ValueError, match=r"column\(s\) \['x'\] more than once"):
        detect_drift(profile, twice)


class RecordingParquetFile(pq.ParquetFile):
    """A real ParquetFile that remembers which columns each read asked for."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.asked: list[list[str] | None] = []

    def read(self, columns=None, *args, **kwargs):
        self.asked.append(None if columns is None else list(columns))
        return super().read(columns, *args, **kwargs)


def test_parquet_is_read_one_column_at_a_time(profile, tmp_path, monkeypatch):
    path = tmp_path / "batch.parquet"
    frame_of(1_000, seed=10).to_parquet(path, index=False)
    handle = RecordingParquetFile(path)
    detect_drift(profile, handle)
    assert handle.asked == [[c] for c in profile.columns]
    # and a path is opened as a ParquetFile and read the same way
    asked: list[list[str] | None] = []
    read = pq.ParquetFile.read

    def recording_read(self, columns=None, *args, **kwargs):
        asked.append(None if columns is None else list(columns))
        return read(self, columns, *args, **kwargs)

    monkeypatch.setattr(pq.ParquetFile, "read", recording_read)
    detect_drift(profile, path, DriftConfig(columns=("plan", "x")))
    assert asked == [["x"], ["plan"]]


# --------------------------------------------------------------------------- edge cases


def test_an_all_missing_current_column_drifts_on_its_missing_rate(profile):
    frame = frame_of(2_000, seed=11)
    frame["x"] = np.nan
    report = detect_drift(profile, frame, DriftConfig(critical_columns=("x",)))
    x = report.column("x")
    assert not x.tested
    assert x.statistic is None
    assert x.effect is None
    assert x.rows == 0
    assert x.p_value == 1.0
    assert x.note == "no current values: distribution not tested"
    assert x.missing.tested
    assert x.missing.drifted
    assert x.missing.current_rate == 1.0
    assert x.drifted
    assert not x.distribution_drifted
    assert report.status == "drift"
    assert any("'x': missing rate" in reason for reason in report.reasons)
    strict_json(report.to_dict())
    render_drift_html(report, title="all missing")


def test_an_all_missing_reference_column_is_not_tested_but_its_missing_rate_is():
    reference = pd.DataFrame({"x": [np.nan] * 300, "y": np.arange(300.0)})
    profile = build_reference_profile(reference)
    report = detect_drift(profile, pd.DataFrame({"x": np.arange(300.0), "y": np.arange(300.0)}))
    x = report.column("x")
    assert not x.tested
    assert x.note == "no reference values: distribution not tested"
    assert x.missing.drifted
    assert x.missing.reference_rate == 1.0
    assert x.missing.current_rate == 0.0
    strict_json(report.to_dict())


def test_a_constant_reference_column_never_divides_by_zero():
    profile = build_reference_profile(pd.DataFrame({"k": [3.0] * 1_000}))
    same = detect_drift(profile, pd.DataFrame({"k": [3.0] * 500})).column("k")
    assert (same.statistic, same.effect, same.wasserstein, same.p_value) == (0.0, 0.0, 0.0, 1.0)
    assert same.note == "constant reference 3: effect is the share of values different from it"
    moved = pd.DataFrame({"k": [3.0] * 400 + [5.0] * 60 + [1.0] * 40})
    report = detect_drift(profile, moved)
    k = report.column("k")
    assert k.effect == pytest.approx(0.2)  # 100 of 500 values differ from the constant
    assert k.wasserstein == pytest.approx((60 * 2 + 40 * 2) / 500)
    assert k.statistic == pytest.approx(60 / 500)
    assert k.drifted
    assert report.status == "drift"
    assert k.histogram["below"] == pytest.approx(0.08)
    assert k.histogram["above"] == pytest.approx(0.12)
    strict_json(report.to_dict())
    few = detect_drift(profile, pd.DataFrame({"k": [3.0] * 480 + [4.0] * 20})).column("k")
    assert few.effect == pytest.approx(0.04)
    assert not few.drifted


def test_unseen_categories_are_pooled_and_reported(profile):
    frame = frame_of(3_000, seed=12)
    plan = frame["plan"].astype(object)
    plan[np.random.default_rng(0).random(len(plan)) < 0.3] = "enterprise"
    frame["plan"] = pd.array(plan, dtype="string")
    col = detect_drift(profile, frame).column("plan")
    share = (frame["plan"] == "enterprise").sum() / frame["plan"].notna().sum()
    assert col.unseen_share == pytest.approx(share)
    assert col.drifted
    assert col.effect > 0.05
    assert col.histogram["categories"][-1] == OTHER
    assert col.histogram["current"][-1] == pytest.approx(share)
    assert col.histogram["reference"][-1] == 0.0


def test_the_profile_other_bucket_and_sparse_categories_are_pooled():
    rng = np.random.default_rng(13)
    cities = [f"c{i:02d}" for i in range(60)]
    weights = np.r_[np.full(10, 8.0), np.ones(50)]
    weights /= weights.sum()
    reference = pd.DataFrame({"city": pd.array(rng.choice(cities, 20_000, p=weights), dtype="string")})
    profile = build_reference_profile(reference, max_categories=20)
    assert OTHER in profile.categorical["city"].counts
    same = pd.DataFrame({"city": pd.array(rng.choice(cities, 3_000, p=weights), dtype="string")})
    col = detect_drift(profile, same).column("city")
    assert not col.drifted
    assert col.p_value > 1e-3
    assert col.unseen_share == pytest.approx((~same["city"].isin(profile.categorical["city"].counts)).mean())
    # a batch too small for any cell to hold 5 expected values: one cell, nothing to compare
    tiny = detect_drift(profile, same.iloc[:40], DriftConfig(min_rows=1)).column("city")
    assert tiny.p_value == 1.0
    assert tiny.statistic == 0.0
    assert tiny.note == "a single category cell after merging sparse cells: nothing to compare"


def test_below_min_rows_the_answer_is_insufficient_data(profile):
    frame = frame_of(50, seed=14, shift=3.0)
    report = detect_drift(profile, frame)
    assert report.status == "insufficient_data"
    assert not report.drifted
    assert report.drifted_columns == []
    assert report.drifted_share == 0.0
    assert not any(c.drifted or c.missing.drifted for c in report.columns)
    assert report.reasons == ["the batch has 50 rows, fewer than min_rows 100: drift is not judged"]
    assert report.column("x").p_value < 1e-6  # the statistics are still there to look at
    assert report.summary() == "insufficient data: 50 rows vs 20,000 reference rows (min_rows 100)"
    assert detect_drift(profile, frame, DriftConfig(min_rows=50)).status == "drift"


def test_an_empty_batch_is_insufficient_data_and_strict_json(profile):
    report = detect_drift(profile, frame_of(0, seed=0))
    assert report.status == "insufficient_data"
    assert report.rows == 0
    assert all(not c.tested and not c.missing.tested for c in report.columns)
    strict_json(report.to_dict())
    render_drift_html(report, title="empty")


def test_a_critical_column_makes_the_dataset_drift(profile):
    # under the rule "share" (the default before issue 8; now the rule "any" is): one drifted
    # column of five is below drift_share, unless it is critical
    frame = frame_of(5_000, seed=15)
    frame["count"] = np.random.default_rng(1).poisson(3.0, len(frame))
    default = detect_drift(profile, frame, DriftConfig(rule="share"))
    assert default.drifted_columns == ["count"]
    assert default.status == "no_drift"  # 1 of 5 < 30%
    assert default.reasons[0] == "1 of 5 columns drifted (20.0% < drift_share 30.0%)"
    critical = detect_drift(profile, frame, DriftConfig(rule="share", critical_columns=("count",)))
    assert critical.status == "drift"
    assert "critical column(s) drifted: count" in critical.reasons
    other = detect_drift(profile, frame, DriftConfig(rule="share", critical_columns=("x",)))
    assert other.status == "no_drift"
    assert "no critical column drifted" in other.reasons
    assert detect_drift(profile, frame, DriftConfig(rule="share", drift_share=0.2)).status == "drift"
    assert detect_drift(profile, frame).status == "drift"  # the default rule "any"


def same_column_frame(columns: int, values: np.ndarray) -> pd.DataFrame:
    return pd.DataFrame({f"c{i}": values for i in range(columns)})


def test_benjamini_hochberg_flags_what_holm_does_not():
    # ten identical columns: ten equal p-values p. Holm adjusts each to 10 p, BH leaves p.
    grid = stats.norm.ppf((np.arange(4_000) + 0.5) / 4_000)
    profile = build_reference_profile(same_column_frame(10, grid))
    current = same_column_frame(10, stats.norm.ppf((np.arange(1_000) + 0.5) / 1_000) + 0.16)
    base = DriftConfig(delta=0.0, missing_delta=0.0)
    holm = detect_drift(profile, current, base)
    p = holm.column("c0").p_value
    assert 0.001 < p < 0.01, p  # the shift was chosen for this
    assert all(c.p_value == p and c.p_adjusted == pytest.approx(10 * p) for c in holm.columns)
    assert holm.family_size == 10
    assert holm.drifted_columns == []
    assert holm.status == "no_drift"
    bh = detect_drift(profile, current, DriftConfig(delta=0.0, missing_delta=0.0, correction="bh"))
    assert all(c.p_adjusted == pytest.approx(p) for c in bh.columns)
    assert len(bh.drifted_columns) == 10
    assert bh.status == "drift"


def test_p_value_adjustment_matches_known_values():
    p = [0.01, 0.04, 0.03, 0.02, 0.05, 0.5]
    # R: p.adjust(p, "holm") and p.adjust(p, "BH")
    assert adjust_p_values(p, "holm") == pytest.approx([0.06, 0.12, 0.12, 0.10, 0.12, 0.5])
    assert adjust_p_values(p, "bh") == pytest.approx([0.06, 0.06, 0.06, 0.06, 0.06, 0.5])
    assert adjust_p_values([], "holm") == []
    with pytest.raises(ValueError, match="correction must be one of"):
        adjust_p_values(p, "bonferroni")


def _hand_written_bh(p_values):
    """The Benjamini-Hochberg step-up this module computed before it used scipy's."""
    p = np.asarray(p_values, dtype=np.float64)
    order = np.argsort(p, kind="stable")
    scaled = p[order] * len(p) / np.arange(1, len(p) + 1)
    out = np.empty(len(p))
    out[order] = np.minimum(1.0, np.minimum.accumulate(scaled[::-1])[::-1])
    return out


def test_benjamini_hochberg_from_scipy_gives_the_same_adjusted_p_values_and_verdicts():
    rng = np.random.default_rng(31)
    for rep in range(500):
        m = int(rng.integers(1, 120))
        p = rng.uniform(0, 1, m) ** rng.uniform(0.2, 6)  # from flat to piled up near 0
        if rep % 3 == 0:
            p[rng.integers(0, m, m // 2)] = p[0]  # ties
        if rep % 5 == 0:
            p[: m // 3] = 1.0  # untested columns
        if rep % 7 == 0:
            p[: m // 4] = 0.0
        got, want = np.asarray(adjust_p_values(p, "bh")), _hand_written_bh(p)
        np.testing.assert_allclose(got, want, rtol=1e-15, atol=0)
        for alpha in (0.01, 0.05, 0.1):
            assert np.array_equal(got < alpha, want < alpha)


@pytest.mark.parametrize("bad", [[0.5, float("nan")], [1.2], [-0.01, 0.3]])
@pytest.mark.parametrize("method", ["holm", "bh"])
def test_p_values_outside_the_unit_interval_are_refused(bad, method):
    with pytest.raises(ValueError, match=r"p-values must lie in \[0, 1\]"):
        adjust_p_values(bad, method)


def test_with_config_equals_a_fresh_run(profile):
    frame = frame_of(4_000, seed=16, shift=0.15)
    loose = DriftConfig(delta=0.0, categorical_delta=0.0, missing_delta=0.0, drift_share=0.01)
    first = detect_drift(profile, frame, loose)
    for config in (
        DriftConfig(),
        DriftConfig(correction="bh", alpha=0.05),
        DriftConfig(columns=("x", "plan"), critical_columns=("plan",)),
        DriftConfig(min_rows=10_000),
    ):
        assert first.with_config(config).to_dict() == detect_drift(profile, frame, config).to_dict()
    assert first.to_dict() == detect_drift(profile, frame, loose).to_dict()  # first left as it was
    with pytest.raises(ValueError, match=r"columns \['nope'\] are not in this drift report"):
        first.with_config(DriftConfig(columns=("nope",)))


# --------------------------------------------------------------------------- numeric statistics


def test_the_batch_is_binned_with_the_profile_rule_so_identical_data_has_no_distance():
    rng = np.random.default_rng(17)
    frame = pd.DataFrame(
        {
            "ints": rng.integers(0, 7, 3_000),  # ties at every edge
            "rounded": np.round(rng.normal(50, 10, 3_000), 0),
            "smooth": rng.normal(0, 1, 3_000),
        }
    )
    profile = build_reference_profile(frame)
    for name, p in profile.numeric.items():
        assert p.counts == np.histogram(frame[name], bins=p.edges)[0].tolist(), name
        assert p.edge_counts == [int((frame[name] == e).sum()) for e in p.edges], name
    report = detect_drift(profile, frame)
    for col in report.columns:
        assert (col.statistic, col.effect, col.psi) == (0.0, 0.0, 0.0), col.name
        assert col.histogram["current"] == pytest.approx(col.histogram["reference"]), col.name
        assert col.histogram["below"] == col.histogram["above"] == 0.0


def test_profiles_of_float32_and_of_large_columns_bin_like_np_histogram():
    rng = np.random.default_rng(24)
    for size in (3_000, 300_000):  # sorted, and partitioned then compared
        values = rng.gamma(2.0, 1.0, size).astype(np.float32)
        values[::97] = np.nan
        single = build_reference_profile(pd.DataFrame({"v": values})).numeric["v"]
        double = build_reference_profile(pd.DataFrame({"v": values.astype(np.float64)})).numeric["v"]
        assert single == double, size
        finite = values[np.isfinite(values)].astype(np.float64)
        assert single.edges == np.unique(np.quantile(finite, np.linspace(0, 1, 21))).tolist()
        assert single.counts == np.histogram(finite, bins=single.edges)[0].tolist()
        assert single.mean == pytest.approx(finite.mean())
        assert single.std == pytest.approx(finite.std(ddof=1))


def test_a_binary_flag_drifts_through_its_point_masses():
    rng = np.random.default_rng(18)
    profile = build_reference_profile(pd.DataFrame({"flag": (rng.random(10_000) < 0.2).astype(int)}))
    p = profile.numeric["flag"]
    assert p.edges == [0.0, 1.0]
    assert p.counts == [10_000]
    moved = pd.DataFrame({"flag": (rng.random(3_000) < 0.35).astype(int)})
    col = detect_drift(profile, moved).column("flag")
    assert col.drifted
    assert col.statistic == pytest.approx(abs(p.edge_counts[1] / 10_000 - moved["flag"].mean()))
    assert col.wasserstein == pytest.approx(col.statistic)  # |share of ones| times the unit distance
    assert col.effect == pytest.approx(col.wasserstein / p.std)


def test_a_profile_written_before_edge_counts_still_loads_and_tests_its_bins(profile):
    doc = profile.to_dict()
    for column in doc["numeric"].values():
        del column["edge_counts"]
    old = ReferenceProfile.from_dict(json.loads(json.dumps(doc)))
    assert old.numeric["x"].edge_counts is None
    report = detect_drift(old, frame_of(5_000, seed=2, shift=0.5, plus_share=0.1))
    assert report.column("x").drifted
    assert report.column("count").drifted
    strict_json(report.to_dict())


def test_ks_statistic_is_the_largest_cdf_gap_at_the_edges():
    rng = np.random.default_rng(19)
    reference = rng.normal(0, 1, 20_000)
    current = rng.normal(0.2, 1.2, 3_000)
    profile = build_reference_profile(pd.DataFrame({"v": reference}))
    col = detect_drift(profile, pd.DataFrame({"v": current})).column("v")
    edges = np.asarray(profile.numeric["v"].edges)
    f_ref = np.r_[[np.mean(reference < e) for e in edges[:-1]], 1.0]
    f_cur = np.r_[[np.mean(current < e) for e in edges[:-1]], np.mean(current <= edges[-1])]
    assert col.statistic == pytest.approx(np.max(np.abs(f_ref - f_cur)))
    n, m = 20_000, 3_000
    assert col.p_value == pytest.approx(stats.kstwobign.sf(np.sqrt(n * m / (n + m)) * col.statistic))
    exact = stats.ks_2samp(reference, current).statistic
    assert col.statistic <= exact + 1e-12
    assert col.statistic > 0.8 * exact


def binned_wasserstein(edges: np.ndarray, ref_counts: np.ndarray, current: np.ndarray) -> float:
    """The integral of |F_ref - F_cur| on a fine grid: both CDFs linear between the reference
    edges, the current one exact (its empirical CDF) outside them."""
    ref_cdf = np.r_[0.0, np.cumsum(ref_counts)] / ref_counts.sum()
    ordered = np.sort(current)
    cur_at_edges = np.r_[[np.mean(current < e) for e in edges[:-1]], np.mean(current <= edges[-1])]
    grid = np.linspace(min(edges[0], ordered[0]) - 1, max(edges[-1], ordered[-1]) + 1, 2_000_001)
    inside = (grid >= edges[0]) & (grid <= edges[-1])
    f_ref = np.interp(grid, edges, ref_cdf, left=0.0, right=1.0)
    f_cur = np.searchsorted(ordered, grid, side="right") / len(current)
    f_cur[inside] = np.interp(grid[inside], edges, cur_at_edges)
    gap = np.abs(f_ref - f_cur)
    return float(np.sum((gap[1:] + gap[:-1]) / 2 * np.diff(grid)))


@pytest.mark.parametrize(
    ("label", "make", "close_to_exact"),
    [
        ("shift", lambda rng: rng.normal(0.5, 1.0, 50_000), 0.2),
        ("scale", lambda rng: rng.normal(0.0, 1.3, 50_000), 0.2),
        ("far tail", lambda rng: np.r_[rng.normal(0.0, 1.0, 45_000), rng.normal(25.0, 1.0, 5_000)], 0.05),
    ],
)
def test_wasserstein_distance_is_the_binned_integral_with_exact_tails(label, make, close_to_exact):
    rng = np.random.default_rng(20)
    reference = rng.normal(0.0, 1.0, 50_000)
    current = make(rng)
    profile = build_reference_profile(pd.DataFrame({"v": reference}))
    p = profile.numeric["v"]
    col = detect_drift(profile, pd.DataFrame({"v": current})).column("v")
    expected = binned_wasserstein(np.asarray(p.edges), np.asarray(p.counts), current)
    assert col.wasserstein == pytest.approx(expected, rel=1e-3), label
    assert col.effect == pytest.approx(col.wasserstein / np.std(reference, ddof=1))
    # linear CDFs inside the wide outer quantile bins overstate a smooth shift a little
    exact = stats.wasserstein_distance(reference, current)
    assert exact <= col.wasserstein <= exact * (1 + close_to_exact), label


def test_float32_data_is_binned_exactly_against_float64_edges():
    # edges like 0.1 are not float32 numbers: a float32 value next to them must land where
    # its exact value belongs, as it does in float64
    reference = pd.DataFrame({"v": np.round(np.linspace(0.0, 2.0, 2_001), 3)})
    profile = build_reference_profile(reference)
    edges = np.asarray(profile.numeric["v"].edges)
    near = np.concatenate([np.nextafter(edges.astype(np.float32), np.float32(d)) for d in (-np.inf, np.inf)])
    values = np.concatenate([near, edges.astype(np.float32)] * 10)
    single = detect_drift(profile, pd.DataFrame({"v": values}), DriftConfig(min_rows=1)).column("v")
    double = detect_drift(profile, pd.DataFrame({"v": values.astype(np.float64)}), DriftConfig(min_rows=1))
    assert single.histogram == double.column("v").histogram
    assert single.statistic == double.column("v").statistic


def test_missing_rate_test_is_a_pooled_two_proportion_z_test(profile):
    frame = frame_of(4_000, seed=21)
    frame.loc[frame.index[:600], "x"] = np.nan
    x = detect_drift(profile, frame).column("x").missing
    ref_missing, ref_total = profile.numeric["x"].missing, profile.rows
    cur_missing = int(frame["x"].isna().sum())
    pooled = (ref_missing + cur_missing) / (ref_total + 4_000)
    z = (cur_missing / 4_000 - ref_missing / ref_total) / np.sqrt(
        pooled * (1 - pooled) * (1 / ref_total + 1 / 4_000)
    )
    assert x.statistic == pytest.approx(z)
    assert x.p_value == pytest.approx(2 * stats.norm.sf(abs(z)))
    assert x.effect == pytest.approx(cur_missing / 4_000 - ref_missing / ref_total)
    assert x.drifted


# --------------------------------------------------------------------------- configuration


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"alpha": 0.0}, "DriftConfig.alpha must be a number in (0, 1), got 0.0"),
        ({"alpha": "0.01"}, "DriftConfig.alpha must be a number in (0, 1), got '0.01'"),
        ({"delta": -0.1}, "DriftConfig.delta must be a finite number >= 0, got -0.1"),
        ({"delta": float("nan")}, "DriftConfig.delta must be a finite number >= 0, got nan"),
        ({"categorical_delta": 1.5}, "DriftConfig.categorical_delta must be a number in [0, 1], got 1.5"),
        ({"missing_delta": True}, "DriftConfig.missing_delta must be a number in [0, 1], got True"),
        (
            {"correction": "bonferroni"},
            "DriftConfig.correction must be one of ['holm', 'bh'], got 'bonferroni'",
        ),
        ({"drift_share": 0}, "DriftConfig.drift_share must be a number in (0, 1], got 0"),
        ({"min_rows": 0}, "DriftConfig.min_rows must be an integer >= 1, got 0"),
        ({"min_rows": 10.0}, "DriftConfig.min_rows must be an integer >= 1, got 10.0"),
        (
            {"critical_columns": "x"},
            "DriftConfig.critical_columns must be a list or tuple of column names, got 'x'",
        ),
        ({"critical_columns": ("x", "x")}, "DriftConfig.critical_columns names a column twice: ['x']"),
        ({"columns": ()}, "DriftConfig.columns must name at least one column, or be None for all"),
        ({"columns": ("a",), "critical_columns": ("b",)}, "DriftConfig.critical_columns ['b'] are not among"),
    ],
)
def test_a_bad_config_says_what_was_expected_and_what_it_got(kwargs, message):
    with pytest.raises(ValueError, match=re.escape(message)):
        DriftConfig(**kwargs)


def test_config_lists_become_tuples_and_round_trip():
    config = DriftConfig(critical_columns=["a"], columns=["a", "b"])  # type: ignore[arg-type]
    assert config.critical_columns == ("a",)
    assert config.columns == ("a", "b")
    assert DriftConfig.from_dict(json.loads(json.dumps(config.to_dict()))) == config
    hash(config)


# --------------------------------------------------------------------------- HTML


def test_the_html_view_is_self_contained_and_escapes_user_strings():
    rng = np.random.default_rng(22)
    evil = "<script>alert('x')</script>"
    reference = pd.DataFrame(
        {
            evil: rng.normal(0, 1, 2_000),
            "cat": pd.array(rng.choice(["<b>bold</b>", "a&b"], 2_000), dtype="string"),
        }
    )
    profile = build_reference_profile(reference)
    current = pd.DataFrame(
        {
            evil: rng.normal(1, 1, 1_000),
            "cat": pd.array(rng.choice(["<b>bold</b>", "a&b"], 1_000), dtype="string"),
        }
    )
    report = detect_drift(profile, current, DriftConfig(critical_columns=(evil,)))
    page = render_drift_html(report, title="Drift <of> 'churn'")
    assert page.startswith("<!doctype html>")
    assert page.endswith("</html>")
    assert "<script" not in page
    assert "<b>bold" not in page
    assert "&lt;script&gt;" in page
    assert "&lt;b&gt;bold&lt;/b&gt;" in page
    assert "a&amp;b" in page
    assert "<title>Drift &lt;of&gt; &#x27;churn&#x27;</title>" in page
    for external in ("http:", "https:", "src=", "href=", "url(", "@import", "<link", "<img", "<iframe"):
        assert external not in page.lower(), external
    assert page.count("<svg") == 2
    assert "<style>" in page
    assert "drifted" in page
    assert "alpha 0.01" in page
    assert "Holm" in page


def test_the_html_table_lists_the_columns_furthest_past_their_threshold_first(drifted_report):
    page = render_drift_html(drifted_report, title="t")
    ratios = sorted(drifted_report.columns, key=lambda c: -c.ratio)
    positions = [page.index(f"<td><b>{c.name}</b>") for c in ratios]
    assert positions == sorted(positions)
    assert ratios[0].ratio >= ratios[-1].ratio


# --------------------------------------------------------------------------- the dataset rule


def one_column_drifted(profile) -> DriftReport:
    frame = frame_of(5_000, seed=15)
    frame["count"] = np.random.default_rng(1).poisson(3.0, len(frame))
    report = detect_drift(profile, frame)
    assert report.drifted_columns == ["count"]
    return report


def test_by_default_one_drifted_column_is_a_dataset_drift(profile):
    report = one_column_drifted(profile)
    assert report.config.rule == "any"
    assert report.status == "drift"
    assert report.reasons[0] == "1 of 5 columns drifted (rule 'any': one drifted column is a dataset drift)"
    assert report.drifted_importance_share is None
    quiet = detect_drift(profile, frame_of(5_000, seed=3))
    assert quiet.status == "no_drift"
    assert quiet.reasons[0] == "none of 5 columns drifted"


@pytest.mark.parametrize(
    ("importance", "share", "status"),
    [
        # the drifted column carries 60% of the importance
        ({"count": 0.06, "x": 0.02, "x32": 0.01, "flag": 0.01, "plan": 0.0}, 0.6, "drift"),
        # 10% < 20%: a column the model hardly uses
        ({"count": 0.01, "x": 0.05, "x32": 0.02, "flag": 0.01, "plan": 0.01}, 0.1, "no_drift"),
        # negative importance (noise) counts as 0; unnamed columns weigh 0
        ({"count": -0.01, "x": 0.05}, 0.0, "no_drift"),
        ({"count": 0.02, "x": 0.02, "x32": -0.5}, 0.5, "drift"),
    ],
)
def test_the_importance_rule_weighs_drifted_columns_by_the_models_use_of_them(
    profile, importance, share, status
):
    base = one_column_drifted(profile)
    report = base.with_config(DriftConfig(rule="importance", importance=importance))
    assert report.drifted_importance_share == pytest.approx(share)
    assert report.status == status
    sign = ">=" if share >= 0.2 else "<"
    assert report.reasons[0] == (
        f"1 of 5 columns drifted, holding {share:.1%} of the model's permutation importance "
        f"({sign} importance_share 20.0%)"
    )
    # the threshold is a setting; a critical column drifts the dataset whatever its weight
    assert base.with_config(
        DriftConfig(rule="importance", importance=importance, importance_share=0.05)
    ).status == ("drift" if share >= 0.05 else "no_drift")
    critical = DriftConfig(rule="importance", importance=importance, critical_columns=("count",))
    assert base.with_config(critical).status == "drift"


def test_the_importance_rule_without_positive_weights_says_it_judged_by_any(profile):
    report = one_column_drifted(profile).with_config(
        DriftConfig(rule="importance", importance={"count": 0.0, "x": -0.1})
    )
    assert report.status == "drift"
    assert report.drifted_importance_share is None
    assert "cannot weigh them: judged by the rule 'any'" in report.reasons[0]


def test_the_rule_and_the_importance_round_trip_through_json(profile):
    config = DriftConfig(rule="importance", importance={"x": 0.5, "count": 0.25}, importance_share=0.3)
    assert config.importance == (("count", 0.25), ("x", 0.5))
    hash(config)
    report = one_column_drifted(profile).with_config(config)
    doc = json.loads(strict_json(report.to_dict()))
    assert doc["rule"] == "importance"
    assert doc["config"]["importance"] == {"count": 0.25, "x": 0.5}
    assert doc["drifted_importance_share"] == pytest.approx(1 / 3)
    again = DriftReport.from_dict(doc)
    assert again.config == config
    assert again.to_dict() == report.to_dict()
    page = render_drift_html(report, title="t", reference="the same period of past season(s)")
    assert "rule importance: 33.3% of the importance drifted; importance_share 30.0%" in page
    assert "<dt>reference</dt><dd>the same period of past season(s)</dd>" in page


def test_a_report_written_before_the_rule_existed_keeps_its_share_rule(drifted_report):
    doc = drifted_report.to_dict()
    for key in ("rule", "importance_share", "importance"):
        doc["config"].pop(key)
    doc.pop("rule")
    doc.pop("drifted_importance_share")
    old = DriftReport.from_dict(doc)
    assert old.config.rule == "share"
    assert old.config.importance is None


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"rule": "most"}, "DriftConfig.rule must be one of ['any', 'share', 'importance'], got 'most'"),
        ({"importance_share": 0.0}, "DriftConfig.importance_share must be a number in (0, 1], got 0.0"),
        ({"importance_share": True}, "DriftConfig.importance_share must be a number in (0, 1], got True"),
        ({"drift_share": float("nan")}, "DriftConfig.drift_share must be a number in (0, 1], got nan"),
        ({"rule": "importance"}, "DriftConfig.rule 'importance' needs importance"),
        (
            {"importance": {"x": float("inf")}},
            "DriftConfig.importance must map column names to finite numbers",
        ),
        ({"importance": {"": 1.0}}, "DriftConfig.importance must map column names to finite numbers"),
        ({"importance": [("x", 1.0), ("x", 2.0)]}, "DriftConfig.importance names a column twice: ['x']"),
        ({"importance": 3}, "DriftConfig.importance must map column names to numbers, got 3"),
    ],
)
def test_a_bad_rule_setting_says_what_was_expected(kwargs, message):
    with pytest.raises(ValueError, match=re.escape(message)):
        DriftConfig(**kwargs)
