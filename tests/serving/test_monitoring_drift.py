"""Data drift: every statistic against scipy or a hand-computed case, false alarms on
stable data, and shifted columns flagged."""

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
    categorical_drift,
    category_counts,
    chi2_homogeneity,
    chi2_sf,
    column_drift,
    dataset_drift,
    jensen_shannon,
    kolmogorov_sf,
    ks_pvalue,
    ks_statistic_sorted,
    numeric_drift,
    numeric_psi,
    psi,
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
