"""Data drift: every statistic against scipy or a hand-computed case, false alarms on
stable data, and shifted columns flagged; Benjamini–Hochberg across columns and effective
sample sizes of rows clustered in series and in periods."""

from __future__ import annotations

import math
from collections import Counter

import numpy as np
import pandas as pd
import pytest
from scipy import special, stats
from scipy.spatial.distance import jensenshannon

from serving.monitoring.drift import (
    MAX_CATEGORIES,
    MISSING_LABEL,
    OTHER_LABEL,
    DriftThresholds,
    benjamini_hochberg,
    bh_adjusted,
    categorical_drift,
    category_counts,
    chi2_homogeneity,
    chi2_sf,
    column_drift,
    dataset_drift,
    frame_iccs,
    intraclass_correlation,
    jensen_shannon,
    kolmogorov_sf,
    ks_pvalue,
    ks_statistic_sorted,
    numeric_drift,
    numeric_psi,
    psi,
    shared_variance,
    wasserstein_sorted,
)

THRESHOLDS = DriftThresholds()
LABELS = np.array([f"c{i:02d}" for i in range(12)])


def _shares(k: int, seed: int) -> np.ndarray:
    return np.random.default_rng(seed).dirichlet(np.full(k, 5.0))


def _samples(kind: str, n: int, seed: int, shift: float = 0.0) -> np.ndarray:
    """Seeded numeric (normal, lognormal, integer counts) or categorical samples."""
    rng = np.random.default_rng(seed)
    if kind == "normal":
        return rng.normal(shift, 1.0, n)
    if kind == "lognormal":
        return rng.lognormal(0.0, 0.5, n) + shift * math.sqrt((math.e**0.25 - 1) * math.e**0.25)
    if kind == "counts":
        return rng.poisson(4.0 + 2 * shift, n).astype(float)
    shares = _shares(len(LABELS), 5) * np.exp(shift * np.linspace(-1, 1, len(LABELS)))
    return rng.choice(LABELS, size=n, p=shares / shares.sum())


# --- statistics against scipy ---------------------------------------------------------


@pytest.mark.parametrize(("kind", "n", "m"), [
    ("normal", 200, 350), ("normal", 1000, 100), ("counts", 300, 900), ("counts", 7, 5),
])
def test_ks_statistic_equals_scipy_ks_2samp(kind: str, n: int, m: int) -> None:
    a, b = _samples(kind, n, 1), _samples(kind, m, 2, shift=0.3)
    expected = stats.ks_2samp(a, b).statistic
    assert ks_statistic_sorted(np.sort(a), np.sort(b)) == pytest.approx(expected, abs=1e-12)


def test_small_numeric_samples_use_ks_2samp() -> None:
    a, b = _samples("normal", 300, 1), _samples("normal", 400, 2, shift=0.25)
    result = numeric_drift("x", a, b, THRESHOLDS)
    expected = stats.ks_2samp(a.astype(np.float32), b.astype(np.float32))
    assert (result.method, result.threshold) == ("ks", 0.05)
    assert result.statistic == pytest.approx(expected.statistic)
    assert result.p_value == pytest.approx(expected.pvalue)
    assert result.drifted == (expected.pvalue < 0.05)


@pytest.mark.parametrize(("kind", "n", "m"), [
    ("normal", 2000, 10000), ("lognormal", 1500, 1500), ("counts", 3000, 9000),
])
def test_wasserstein_is_exact_when_one_size_divides_the_other(kind: str, n: int, m: int) -> None:
    a, b = _samples(kind, n, 3), _samples(kind, m, 4, shift=0.2)
    expected = stats.wasserstein_distance(a, b)
    assert wasserstein_sorted(np.sort(a), np.sort(b)) == pytest.approx(expected, rel=1e-9)


@pytest.mark.parametrize(("n", "m"), [(1234, 5678), (999, 1001), (37, 20011)])
def test_wasserstein_is_within_its_bound_for_other_sizes(n: int, m: int) -> None:
    a, b = _samples("lognormal", n, 5), _samples("lognormal", m, 6, shift=0.1)
    bound = (a.max() - a.min()) / max(n, m) if n < m else (b.max() - b.min()) / n
    got = wasserstein_sorted(np.sort(a), np.sort(b))
    assert abs(got - stats.wasserstein_distance(a, b)) <= bound


def test_large_numeric_samples_use_wasserstein_over_reference_std() -> None:
    a = _samples("normal", 4000, 7).astype(np.float32)
    b = _samples("normal", 12000, 8, shift=0.3).astype(np.float32)
    result = numeric_drift("x", a, b, THRESHOLDS)
    expected = stats.wasserstein_distance(a, b) / np.std(a.astype(np.float64))
    assert result.method == "wasserstein" and result.threshold == 0.1
    assert result.statistic == pytest.approx(expected, rel=1e-6)
    assert result.drifted


def test_ks_pvalue_is_the_kolmogorov_limit_law() -> None:
    for x in np.linspace(0.05, 3.0, 40):
        assert kolmogorov_sf(x) == pytest.approx(special.kolmogorov(x), abs=1e-12)
    d, n, m = 0.031, 4000, 12000
    expected = stats.kstwobign.sf(math.sqrt(n * m / (n + m)) * d)
    assert ks_pvalue(d, n, m) == pytest.approx(expected, rel=1e-9)


@pytest.mark.parametrize("dof", [1, 2, 3, 4, 11, 29, 200])
def test_chi2_survival_equals_scipy(dof: int) -> None:
    for x in (0.01, 0.7, 3.0, 12.0, 60.0, 400.0, 5e4):
        assert chi2_sf(x, dof) == pytest.approx(stats.chi2.sf(x, dof), rel=1e-9, abs=1e-300)


def test_chi2_homogeneity_equals_chi2_contingency() -> None:
    reference, current = np.array([30, 50, 20, 0, 7]), np.array([45, 40, 30, 3, 0])
    statistic, p_value = chi2_homogeneity(reference, current)
    expected = stats.chi2_contingency(np.vstack([reference, current])[:, [0, 1, 2, 3, 4]],
                                      correction=False)
    assert statistic == pytest.approx(expected.statistic)
    assert p_value == pytest.approx(expected.pvalue)


def test_small_categorical_samples_use_chi2_contingency() -> None:
    a, b = _samples("cat", 400, 1), _samples("cat", 300, 2, shift=0.8)
    result = categorical_drift("c", pd.Series(a), pd.Series(b), THRESHOLDS)
    count_a, count_b = Counter(a), Counter(b)
    labels = sorted(set(a) | set(b))
    table = np.array([[count_a[x] for x in labels], [count_b[x] for x in labels]])
    expected = stats.chi2_contingency(table)
    assert result.method == "chi2"
    assert result.statistic == pytest.approx(expected.statistic)
    assert result.p_value == pytest.approx(expected.pvalue)
    assert result.drifted


def test_jensen_shannon_equals_scipy_base_2() -> None:
    p, q = np.array([5.0, 1.0, 0.0, 4.0]), np.array([1.0, 1.0, 3.0, 5.0])
    assert jensen_shannon(p, q) == pytest.approx(jensenshannon(p, q, base=2))
    assert jensen_shannon(p, p) == 0.0


def test_large_categorical_samples_use_jensen_shannon_of_the_shares() -> None:
    a, b = _samples("cat", 3000, 3), _samples("cat", 5000, 4, shift=0.8)
    result = categorical_drift("c", pd.Series(a), pd.Series(b), THRESHOLDS)
    count_a, count_b = Counter(a), Counter(b)
    share_a = np.array([count_a[x] / 3000 for x in LABELS])
    share_b = np.array([count_b[x] / 5000 for x in LABELS])
    assert result.method == "jensenshannon" and result.threshold == 0.1
    assert result.statistic == pytest.approx(jensenshannon(share_a, share_b, base=2))
    assert result.drifted


# --- PSI --------------------------------------------------------------------------------


def test_psi_on_a_hand_computed_two_bin_case() -> None:
    # (0.8 - 0.5) ln(0.8 / 0.5) + (0.2 - 0.5) ln(0.2 / 0.5)
    assert psi(np.array([0.5, 0.5]), np.array([0.8, 0.2])) == pytest.approx(0.4158883, abs=1e-7)
    # an empty bin counts as a share of 1e-4: (1e-4 - 0.5) ln(1e-4 / 0.5) + (1 - 0.5) ln(2)
    assert psi(np.array([0.5, 0.5]), np.array([0.0, 1.0])) == pytest.approx(
        (1e-4 - 0.5) * math.log(1e-4 / 0.5) + 0.5 * math.log(2.0)
    )


def test_numeric_psi_bins_are_reference_deciles() -> None:
    reference = np.arange(1000, dtype=np.float32)  # deciles: 10 bins of 100 values
    current = np.sort(np.random.default_rng(0).uniform(0, 99, 500).astype(np.float32))
    # all current values in the first bin: (1 - 0.1) ln 10 + 9 (1e-4 - 0.1) ln(1e-3)
    expected = 0.9 * math.log(10) + 9 * (1e-4 - 0.1) * math.log(1e-3)
    assert numeric_psi(reference, current) == pytest.approx(expected, rel=1e-6)


def test_psi_alone_does_not_mark_a_column_drifted() -> None:
    # 30 values each: PSI is noisy (often > 0.2) but the KS test decides
    a, b = _samples("normal", 30, 11), _samples("normal", 30, 12)
    result = numeric_drift("x", a, b, THRESHOLDS)
    assert result.psi_drifted == (result.psi > 0.2)
    assert result.drifted == (result.p_value < 0.05)


# --- behaviour: false alarms, shifts, data sets ----------------------------------------

KINDS = ("normal", "lognormal", "counts", "cat")


def _stable_flags(n_reference: int, n_current: int) -> tuple[int, int]:
    """Drifted columns over 20 seeds of stable data (same distribution both sides)."""
    flags, tests = 0, 0
    for seed in range(20):
        for k, kind in enumerate(KINDS):
            a = _samples(kind, n_reference, 1000 * seed + 2 * k)
            b = _samples(kind, n_current, 1000 * seed + 2 * k + 1)
            flags += column_drift(pd.Series(a), pd.Series(b), THRESHOLDS, kind).drifted
            tests += 1
    return flags, tests


@pytest.mark.parametrize(("n_reference", "n_current"), [
    (200, 300),    # tests: KS and chi-square
    (200, 1500),   # distances with a small reference: noisy, the significance guard matters
    (5000, 20000), # distances on large samples
])
def test_false_alarm_rate_on_stable_data_is_at_most_the_significance(
    n_reference: int, n_current: int,
) -> None:
    flags, tests = _stable_flags(n_reference, n_current)
    # tolerance: the 99th percentile of Binomial(tests, 0.05) (80 tests: 9 alarms)
    assert flags <= stats.binom.ppf(0.99, tests, THRESHOLDS.p_value)


@pytest.mark.parametrize(("n_reference", "n_current", "shift"), [
    (500, 800, 0.5), (5000, 20000, 0.2),
])
@pytest.mark.parametrize("kind", KINDS)
def test_shifted_columns_are_flagged(
    kind: str, n_reference: int, n_current: int, shift: float,
) -> None:
    shift = 1.0 if kind == "cat" else shift
    a, b = _samples(kind, n_reference, 21), _samples(kind, n_current, 22, shift=shift)
    assert column_drift(pd.Series(a), pd.Series(b), THRESHOLDS, kind).drifted


def _frame(n: int, seed: int, shifted: tuple[str, ...] = ()) -> pd.DataFrame:
    columns = {f"{kind}_{i}": _samples(kind, n, seed * 100 + 10 * i + j,
                                       shift=(1.0 if f"{kind}_{i}" in shifted else 0.0))
               for i in range(2) for j, kind in enumerate(KINDS)}
    return pd.DataFrame(columns).assign(ds=pd.date_range("2024-01-01", periods=n, freq="h"))


@pytest.mark.parametrize(("drift_share", "dataset_drifted"), [(0.25, True), (0.5, False)])
def test_dataset_drift_is_the_share_of_drifted_columns(
    drift_share: float, dataset_drifted: bool,
) -> None:
    shifted = ("normal_0", "cat_1")
    reference, current = _frame(3000, 1), _frame(4000, 2, shifted)
    drift = dataset_drift(reference, current, DriftThresholds(drift_share=drift_share))
    assert sorted(drift.drifted_columns) == sorted(shifted)
    assert (drift.n_drifted, drift.share) == (2, 2 / 8)
    assert drift.dataset_drifted is dataset_drifted
    assert drift.skipped["ds"].startswith("dates")  # dates are not compared
    assert drift.type_changed == []


def test_a_column_whose_type_changed_is_skipped_and_listed() -> None:
    reference = pd.DataFrame({"price": np.arange(20.0), "store": ["a", "b"] * 10})
    current = reference.assign(price=reference["price"].astype(str))
    drift = dataset_drift(reference, current, THRESHOLDS)
    assert [c.column for c in drift.columns] == ["store"]
    assert drift.type_changed == ["price"]
    assert drift.skipped["price"] == "type changed: float64 vs str"


def test_prediction_drift_uses_the_same_function() -> None:
    reference = pd.Series(_samples("normal", 3000, 1), name="yhat")
    current = pd.Series(_samples("normal", 3000, 2, shift=0.4), name="yhat")
    result = column_drift(reference, current, THRESHOLDS)
    assert (result.column, result.kind, result.drifted) == ("yhat", "numeric", True)


def test_missing_values_are_counted_and_an_empty_side_is_no_data() -> None:
    values = np.array([1.0, 2.0, np.nan, 4.0, np.inf, 3.0, 2.0, 1.0])
    result = numeric_drift("x", values, values[:4], THRESHOLDS)
    assert result.missing_reference == pytest.approx(2 / 8)
    assert result.missing_current == pytest.approx(1 / 4)
    assert (result.n_reference, result.n_current) == (6, 3)
    empty = numeric_drift("x", values, np.full(5, np.nan), THRESHOLDS)
    assert (empty.method, empty.drifted, empty.n_current) == ("no data", False, 0)


def test_missing_categories_are_a_category_of_their_own() -> None:
    reference = pd.Series(["a", "b", None, "a"])
    current = pd.Series(["a", None, None, "c"])
    names, ref_counts, cur_counts = category_counts(reference, current)
    counts = dict(zip(names, zip(ref_counts.tolist(), cur_counts.tolist(), strict=True),
                      strict=True))
    assert counts == {"a": (2, 1), "b": (1, 0), "c": (0, 1), MISSING_LABEL: (1, 2)}


def test_rare_categories_beyond_the_limit_are_pooled() -> None:
    rng = np.random.default_rng(3)
    values = pd.Series(rng.choice([f"k{i}" for i in range(50)], size=5000))
    names, ref_counts, cur_counts = category_counts(values, values.iloc[:2500])
    assert len(names) == MAX_CATEGORIES and names[-1] == OTHER_LABEL
    assert (ref_counts.sum(), cur_counts.sum()) == (5000, 2500)


def test_thresholds_come_from_a_mapping_and_are_validated() -> None:
    thresholds = DriftThresholds.from_mapping({"p_value": "0.01", "large_sample": 500.0,
                                               "something_new": 1})
    assert (thresholds.p_value, thresholds.large_sample) == (0.01, 500)
    assert thresholds.psi_threshold == 0.2
    with pytest.raises(ValueError, match="p_value"):
        DriftThresholds(p_value=1.5)


# --- many columns: Benjamini–Hochberg ----------------------------------------------------


def _brute_force_adjusted(p_values: list[float]) -> list[float]:
    """min over j >= i of p_(j) n / j (capped at 1), straight from the definition."""
    ranked = sorted(p_values)
    n = len(ranked)
    by_rank = [min(1.0, min(ranked[j] * n / (j + 1) for j in range(i, n))) for i in range(n)]
    return [by_rank[ranked.index(p)] for p in p_values]


@pytest.mark.parametrize(("p_values", "rejected"), [
    # thresholds i q / n = .0125 .025 .0375 .05: only p_(1) = .01 is under its own
    ([0.01, 0.04, 0.03, 0.2], [True, False, False, False]),
    # p_(3) = .035 <= .0375, so the step-up also rejects p_(2) = .03 > .025
    ([0.012, 0.03, 0.035, 0.5], [True, True, True, False]),
    ([0.2, 0.3, 0.9], [False, False, False]),
])
def test_benjamini_hochberg_on_hand_worked_cases(
    p_values: list[float], rejected: list[bool],
) -> None:
    assert benjamini_hochberg(p_values, 0.05).tolist() == rejected
    assert bh_adjusted(p_values) == pytest.approx(_brute_force_adjusted(p_values), rel=1e-12)


def test_adjusted_p_values_match_the_definition_on_random_p_values() -> None:
    p_values = np.random.default_rng(4).uniform(0, 0.2, 40).tolist()
    adjusted = bh_adjusted(p_values)
    assert adjusted == pytest.approx(_brute_force_adjusted(p_values), rel=1e-12)
    assert benjamini_hochberg(p_values, 0.1).tolist() == (adjusted <= 0.1).tolist()


def test_missing_p_values_are_never_rejected_and_not_counted() -> None:
    adjusted = bh_adjusted([0.01, None, math.nan, 0.02])
    assert adjusted[[0, 3]] == pytest.approx([0.02, 0.02])  # n = 2, not 4
    assert np.isnan(adjusted[[1, 2]]).all()
    assert benjamini_hochberg([0.01, None, math.nan, 0.02], 0.05).tolist() == [
        True, False, False, True]
    assert bh_adjusted([]).size == 0


def _noise(n: int, seed: int, columns: int = 30, shift: float = 0.0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    frame = pd.DataFrame({f"x{i:02d}": rng.normal(0.0, 1.0, n) for i in range(columns)})
    return frame.assign(moved=rng.normal(shift, 1.0, n))


@pytest.mark.parametrize("large_sample", [5000, 1000])  # KS tests, distances + guard
def test_thirty_stable_columns_rarely_raise_any_alarm(large_sample: int) -> None:
    thresholds = DriftThresholds(large_sample=large_sample)
    any_alarm, any_raw, moved = 0, 0, 0
    for seed in range(20):
        drift = dataset_drift(_noise(2000, 2 * seed), _noise(960, 2 * seed + 1, shift=0.5),
                              thresholds)
        stable = [c for c in drift.columns if c.column != "moved"]
        any_alarm += any(c.drifted for c in stable)
        any_raw += any(c.p_value < thresholds.p_value for c in stable)
        moved += "moved" in drift.drifted_columns
        assert all(c.p_adjusted >= c.p_value for c in drift.columns)
    assert any_alarm / 20 <= 0.1
    assert any_raw / 20 >= 0.4  # one test per column at 0.05: an alarm in about half the runs
    assert moved == 20  # a 0.5 sd shift is still flagged every time
    assert drift.multiple_testing == "benjamini-hochberg" and drift.cluster is None


def test_a_single_column_keeps_its_raw_p_value() -> None:
    a, b = _samples("normal", 300, 1), _samples("normal", 400, 2, shift=0.2)
    single = column_drift(pd.Series(a), pd.Series(b), THRESHOLDS, "x")
    frame = dataset_drift(pd.DataFrame({"x": a}), pd.DataFrame({"x": b}), THRESHOLDS)
    assert single.p_adjusted is None and single.icc is None
    assert frame.columns[0].p_value == frame.columns[0].p_adjusted == single.p_value


# --- rows clustered in series: effective sample sizes -------------------------------------


def test_intraclass_correlation_on_a_hand_worked_case() -> None:
    # means 2 and 5 around 3.5: MSB = 3 (1.5^2 + 1.5^2) / 1 = 13.5; MSW = 4 / 4 = 1; n0 = 3
    values, groups = np.array([1.0, 2, 3, 4, 5, 6]), np.array([0, 0, 0, 1, 1, 1])
    assert intraclass_correlation(values, groups) == pytest.approx(12.5 / 15.5)
    assert intraclass_correlation(np.array([1.0, 2, 1, 2]), np.array([0, 0, 1, 1])) == 0.0
    assert intraclass_correlation(np.full(6, 3.0), groups) == 0.0  # constant
    assert intraclass_correlation(values, np.arange(6)) == 0.0  # one value per series
    assert intraclass_correlation(values, np.zeros(6)) == 0.0  # one series


SERIES, WEEKS = 120, 8


def _clustered(seed: int, columns: int, shift: float = 0.0) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Reference and current of the same 120 series x 8 weeks and the same process: a fixed
    effect per series (shared), a per-series deviation persistent over each 8-week window
    (redrawn for each frame) and weekly noise; ``shift`` moves every current value."""
    rng = np.random.default_rng(seed)
    series = np.repeat([f"S{s:03d}" for s in range(SERIES)], WEEKS)
    fixed = rng.normal(0.0, 1.0, (columns, SERIES))

    def frame(offset: float) -> pd.DataFrame:
        window = rng.normal(0.0, 1.0, (columns, SERIES))
        values = np.repeat(fixed + window, WEEKS, axis=1) + rng.normal(0, 0.3, (columns,
                                                                                SERIES * WEEKS))
        return pd.DataFrame({f"share_{i}": values[i] + offset for i in range(columns)}
                            ).assign(series_id=series)

    return frame(0.0), frame(shift)


def _clustered_alarms(cluster: str | None, shift: float = 0.0) -> int:
    names = [f"share_{i}" for i in range(5)]
    alarms = 0
    for seed in range(20):
        reference, current = _clustered(seed, len(names), shift)
        alarms += dataset_drift(reference, current, THRESHOLDS, names, cluster).n_drifted
    return alarms


def test_clustered_rows_raise_far_fewer_false_alarms_with_effective_sizes() -> None:
    without, with_sizes = _clustered_alarms(None), _clustered_alarms("series_id")
    assert without >= 20  # 960 rows counted as independent: many of 100 columns flagged
    assert with_sizes <= 0.05 * 100
    assert with_sizes * 4 <= without


def test_a_large_shift_of_clustered_rows_is_still_flagged() -> None:
    assert _clustered_alarms("series_id", shift=1.5) >= 90  # of 100 columns


def _without_shared_series_level(frame: pd.DataFrame, shared: float) -> float:
    """The frame's ICC minus the share of its variance the series level shared with the
    other frame takes (same series in both frames)."""
    icc = intraclass_correlation(frame["share_0"].to_numpy(), frame["series_id"].to_numpy())
    return max(0.0, icc - shared / frame["share_0"].var())


def test_effective_sizes_follow_each_frames_own_intra_series_correlation() -> None:
    reference, current = _clustered(1, 1)
    column = dataset_drift(reference, current, THRESHOLDS, ["share_0"]).columns[0]
    means = pd.DataFrame({"r": reference.groupby("series_id")["share_0"].mean(),
                          "c": current.groupby("series_id")["share_0"].mean()})
    shared = means["r"].cov(means["c"])  # the fixed series level (variance 1)
    assert 0.6 < shared < 1.4
    icc_r, icc_c = (_without_shared_series_level(f, shared) for f in (reference, current))
    assert min(icc_r, icc_c) > 0.3 and max(icc_r, icc_c) < 0.7  # window deviation: 1 / 2.09
    assert column.icc == pytest.approx(max(icc_r, icc_c))
    n_eff = (960 / (1 + (WEEKS - 1) * icc_r), 960 / (1 + (WEEKS - 1) * icc_c))
    assert (column.n_effective_reference, column.n_effective_current) == pytest.approx(n_eff)
    assert (column.bound_reference, column.bound_current) == ("series", "series")
    statistic = stats.ks_2samp(reference["share_0"], current["share_0"]).statistic
    scale = math.sqrt(n_eff[0] * n_eff[1] / sum(n_eff))
    assert column.method == "ks"
    assert column.p_value == pytest.approx(stats.kstwobign.sf(scale * statistic), rel=1e-4)


def test_frame_iccs_remove_only_what_the_frames_share() -> None:
    rng = np.random.default_rng(5)
    groups = np.repeat(np.arange(200), 8)
    half_levels = rng.normal(0.0, 1.0, 100)
    half_levels -= half_levels.mean()  # both halves of the series: the same level variance
    level = np.repeat(np.concatenate([half_levels, rng.permutation(half_levels)]), 8)
    reference, current = level + rng.normal(0, 0.1, 1600), level + rng.normal(0, 0.1, 1600)
    assert intraclass_correlation(reference, groups) > 0.95
    assert shared_variance(reference, groups, current, groups) == pytest.approx(
        half_levels.var(ddof=1), rel=0.05)  # the variance of the level
    assert frame_iccs(reference, groups, current, groups) == pytest.approx((0.0, 0.0), abs=0.03)
    other = groups + 200  # other series: nothing shared, each frame's own ICC
    assert shared_variance(reference, groups, current, other) == 0.0
    assert frame_iccs(reference, groups, current, other) == (
        intraclass_correlation(reference, groups), intraclass_correlation(current, other))
    half = np.where(groups < 100, groups, groups + 200)  # half the series in both frames
    expected = (intraclass_correlation(reference, groups) / 2,
                intraclass_correlation(current, half) / 2)  # half the level cancels
    assert frame_iccs(reference, groups, current, half) == pytest.approx(expected, abs=0.05)


def test_clustered_categories_test_counts_scaled_to_the_effective_sizes() -> None:
    rng = np.random.default_rng(8)
    series = np.repeat([f"S{s}" for s in range(80)], 10)
    segment = np.repeat(rng.choice(["a", "b", "c"], 80), 10)  # one segment per series
    segment = np.where(rng.uniform(size=800) < 0.1, "a", segment)
    reference = pd.DataFrame({"series_id": series[:400], "segment": segment[:400]})
    current = pd.DataFrame({"series_id": series[400:], "segment": segment[400:]})  # new series
    column = dataset_drift(reference, current, THRESHOLDS, ["segment"]).columns[0]
    ref = reference["segment"].value_counts().reindex(["a", "b", "c"]).to_numpy()
    cur = current["segment"].value_counts().reindex(["a", "b", "c"]).to_numpy()
    table = np.vstack([ref * column.n_effective_reference / 400,
                       cur * column.n_effective_current / 400])
    expected = stats.chi2_contingency(table, correction=False)
    assert column.method == "chi2" and column.icc > 0.5
    assert column.p_value == pytest.approx(expected.pvalue)
    naive = dataset_drift(reference, current, THRESHOLDS, ["segment"], cluster=None)
    assert naive.columns[0].p_value < column.p_value


def test_a_segment_both_frames_share_per_series_is_corrected_far_less() -> None:
    rng = np.random.default_rng(8)
    series = np.repeat([f"S{s}" for s in range(40)], 10)
    segment = np.repeat(rng.choice(["a", "b", "c"], 40), 10)  # the same series, same segment
    reference = pd.DataFrame({"series_id": series, "segment": segment})
    current = reference.assign(segment=np.where(rng.uniform(size=400) < 0.25, "a", segment))
    same = dataset_drift(reference, current, THRESHOLDS, ["segment"]).columns[0]
    renamed = current.assign(series_id=current["series_id"] + "-new")
    new = dataset_drift(reference, renamed, THRESHOLDS, ["segment"]).columns[0]
    assert new.n_effective_reference == pytest.approx(40.0)  # ICC 1: one value per series
    assert same.n_effective_reference > 3 * 40 and same.n_effective_current == 400
    assert same.drifted and not new.drifted  # the change is per row, the segments shared


def _shared_level(seed: int, shift: float = 0.0) -> tuple[pd.DataFrame, pd.DataFrame]:
    """120 series x 8 weeks in both frames: a fixed series level (sd 1) in both, a deviation
    per series and frame (sd 0.5) and weekly noise (sd 0.5); ``shift`` in total sds."""
    rng = np.random.default_rng(seed)
    level = rng.normal(0.0, 1.0, SERIES)
    series = np.repeat([f"S{s:03d}" for s in range(SERIES)], WEEKS)

    def frame(offset: float) -> pd.DataFrame:
        window = np.repeat(level + rng.normal(0.0, 0.5, SERIES), WEEKS)
        values = window + rng.normal(0.0, 0.5, SERIES * WEEKS) + offset * math.sqrt(1.5)
        return pd.DataFrame({"x": values, "series_id": series})

    return frame(0.0), frame(shift)


def _shared_level_alarms(shift: float, cluster: str | None = "series_id") -> int:
    return sum(dataset_drift(*_shared_level(seed, shift), THRESHOLDS, ["x"], cluster).n_drifted
               for seed in range(20))


def test_a_small_shift_of_series_with_a_shared_level_is_still_detected() -> None:
    # the pooled (or per-frame) ICC counted the shared level: 0.3 sd found in about 1 of 3
    assert _shared_level_alarms(0.3) >= 16
    assert _shared_level_alarms(0.3, cluster=None) >= 16
    assert _shared_level_alarms(0.0) <= 2  # no change: still at most 10 % false alarms
    assert _shared_level_alarms(0.0, cluster=None) > _shared_level_alarms(0.0)


def _periods(rng: np.random.Generator, weeks: int, start: str, shift: float) -> pd.DataFrame:
    """120 series x ``weeks``: ``promo`` one value per week for every series, ``price_ratio``
    a chain-wide weekly value plus a little per row; ``shift`` moves both."""
    common = rng.normal(shift, 1.0, (2, weeks))
    return pd.DataFrame({
        "series_id": np.repeat([f"S{s:03d}" for s in range(SERIES)], weeks),
        "ds": np.tile(pd.date_range(start, periods=weeks, freq="7D"), SERIES),
        "promo": np.tile(common[0], SERIES),
        "price_ratio": np.tile(common[1], SERIES) + rng.normal(0.0, 0.3, SERIES * weeks),
    })


def _period_alarms(time_cluster: str | None, shift: float = 0.0) -> tuple[int, list[str]]:
    """Seeds (of 20) with any alarm, 40 reference weeks vs 8 current; the last seed's bounds."""
    alarms, bounds = 0, []
    for seed in range(20):
        rng = np.random.default_rng(seed)
        reference = _periods(rng, 40, "2023-01-02", 0.0)
        current = _periods(rng, WEEKS, "2023-10-09", shift)
        drift = dataset_drift(reference, current, THRESHOLDS, ["promo", "price_ratio"],
                              time_cluster=time_cluster)
        alarms += drift.n_drifted > 0
        bounds = [f"{c.bound_reference}/{c.bound_current}" for c in drift.columns]
    return alarms, bounds


def test_inputs_shared_within_a_period_count_as_few_draws() -> None:
    with_time, bounds = _period_alarms("ds")
    without, _ = _period_alarms(None)
    assert with_time <= 2  # at most 10 % of the seeds
    assert without >= 15  # 960 rows as 960 draws: nearly every seed
    assert bounds == ["time/time", "time/time"]


def test_a_large_shift_of_a_per_period_input_is_still_flagged() -> None:
    assert _period_alarms("ds", shift=2.5)[0] >= 16


def test_effective_sizes_are_the_smaller_of_the_two_clusterings() -> None:
    rng = np.random.default_rng(3)
    reference = _periods(rng, 40, "2023-01-02", 0.0)
    current = _periods(rng, WEEKS, "2023-10-09", 0.0)
    level = np.repeat(rng.normal(0.0, 1.0, SERIES), WEEKS)  # series only, redrawn per frame
    reference["store"] = np.repeat(rng.normal(0.0, 1.0, SERIES), 40) + rng.normal(0, 0.1, 4800)
    current["store"] = level + rng.normal(0.0, 0.1, SERIES * WEEKS)
    drift = dataset_drift(reference, current, THRESHOLDS, ["promo", "store"])
    promo, store = drift.columns
    assert (drift.cluster, drift.time_cluster) == ("series_id", "ds")
    assert promo.icc_time == pytest.approx(1.0) and promo.icc == 0.0
    assert (promo.n_effective_reference, promo.n_effective_current) == pytest.approx((40, 8))
    assert store.icc > 0.7 and store.icc_time < 0.05  # chance covariance of the levels: < 1
    assert (store.bound_reference, store.bound_current) == ("series", "series")
    assert store.n_effective_current == pytest.approx(960 / (1 + 7 * store.icc), rel=0.02)


def test_frames_without_the_cluster_column_count_rows_as_independent() -> None:
    reference, current = _clustered(2, 2)
    for drift in (dataset_drift(reference.drop(columns="series_id"), current, THRESHOLDS),
                  dataset_drift(reference, current, THRESHOLDS, cluster=None)):
        assert drift.cluster is None and drift.time_cluster is None  # neither frame has ds
        assert all(c.icc is None and c.n_effective_current is None for c in drift.columns)
    assert dataset_drift(reference, current, THRESHOLDS).cluster == "series_id"
    timed = dataset_drift(reference.assign(ds=1), current.assign(ds=2), THRESHOLDS,
                          cluster=None, time_cluster="ds")
    assert timed.time_cluster == "ds"
    assert all(c.icc_time == 0.0 and c.bound_current is None for c in timed.columns)
