"""Data drift: does the data the champion sees now look like the data it learned from?

Each column of a *reference* frame (the training sample) is compared with the same
column of a *current* frame (prediction inputs over a monitoring window, or a file):

* numeric, both samples small (<= ``large_sample`` values): two-sample Kolmogorov–Smirnov
  test (``scipy.stats.ks_2samp``); drifted when p < ``p_value``.
* numeric, larger: Wasserstein distance divided by the reference's standard deviation
  ("the distributions moved by 0.2 standard deviations"); drifted when it exceeds
  ``distance_threshold``.
* categorical, small: chi-square test of homogeneity on the 2 x k table of counts
  (``scipy.stats.chi2_contingency``); drifted when p < ``p_value``.
* categorical, larger: Jensen–Shannon distance (base 2, 0..1) of the category shares;
  drifted when it exceeds ``distance_threshold``.

On the distance path a column is only called drifted when the shift is also
statistically significant (asymptotic KS for numeric, chi-square for categorical, both
from the same sorted values / counts, so they cost nothing extra). The distance says the
shift is large enough to matter, the test that it is not sampling noise: this keeps the
false-alarm rate at or under ``p_value`` even when one sample is only just "large".

PSI (population stability index; numeric: 10 quantile bins of the reference, categorical:
category shares; empty bins get a share of 1e-4) is computed for every column and
flagged above ``psi_threshold``, but **PSI alone never marks a column drifted**: its
sampling noise on small samples (about (bins - 1) * (1/n_ref + 1/n_cur)) would break the
false-alarm guarantee. The report shows it next to the primary score.

Many columns at once (:func:`dataset_drift`): testing 26 features at ``p_value`` each
would flag about one in 20 stable features every run. The p-values of all compared columns
are therefore controlled together with Benjamini–Hochberg at q = ``p_value``: a column is
drifted only when its BH-adjusted p-value (``p_adjusted``: min over j >= i of
p_(j) * n / j, the i-th smallest of n p-values) is at most q and, on the distance path, its
distance exceeds ``distance_threshold``. With every column stable, the chance of any
alarm is then at most q; when some moved, at most a share q of the flagged ones are
expected to be false (for independent or positively dependent p-values). The raw
``p_value`` is kept next to the adjusted one.

Rows of one series are not independent (a store's customer mix barely moves from week to
week: 120 series x 8 weeks are not 960 independent values), nor are the rows of one period
for inputs shared across series (a promotion planned per category and week, a chain-wide
price change, a holiday: 8 weeks of such a column are about 8 draws). When both frames
carry the ``cluster`` column (``series_id``) and / or the ``time_cluster`` column (``ds``),
each column gets, per frame and per clustering, an intra-group correlation ICC (one-way
ANOVA ICC(1) of that frame's values grouped by series, or by period, clipped to 0..1;
categorical columns: of the indicator of the most frequent category of both frames). A
group effect present in both frames (the same series' fixed level) cancels in the
comparison, so the between-group variance the frames share (covariance of the two frames'
group means over common groups, weighted by the share of the other frame's rows in common
groups) is taken off each frame's ICC first; counting it, as a pooled ICC does, hid a
0.3 sd shift of every series. Each sample's n becomes n_eff = n / (1 + (m - 1) ICC), m the
mean rows per group in that sample, using the clustering that gives the SMALLER n_eff (the
larger design effect). That is the more conservative of the two one-way corrections; when
both ICCs are large, the crossed design effect, about 1 + (m_s - 1) ICC_s + (m_t - 1) ICC_t,
is up to twice the larger one, so such a column is still under-corrected. The effective
sizes enter every p-value: KS from the Kolmogorov limit law, chi-square on the counts
scaled by n_eff / n. Distances and PSI are unchanged.

Dataset drift: the share of drifted columns is at least ``drift_share``. Prediction drift
(``yhat``) and target drift (actuals ``y``) use the same :func:`column_drift`, one column
at its raw p-value, without either correction.

Everything is vectorised NumPy on sorted values and category counts; scipy.stats (slow to
import) is loaded only when a small-sample test runs.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, fields, replace
from typing import Literal, TypedDict

import numpy as np
import pandas as pd

log = logging.getLogger(__name__)

Kind = Literal["numeric", "categorical"]
Bound = Literal["series", "time"]
PSI_BINS = 10
PSI_EPS = 1e-4
HISTOGRAM_BINS = 20
MAX_CATEGORIES = 30
MISSING_LABEL = "(missing)"
OTHER_LABEL = "(other)"
TESTS = ("ks", "chi2")
BENJAMINI_HOCHBERG = "benjamini-hochberg"


@dataclass(frozen=True)
class DriftThresholds:
    """Drift and accuracy thresholds; same fields and defaults as the spec's `monitoring`.

    `serving` cannot import `experiments`, so the CLI converts the spec's
    ``MonitoringConfig`` with :meth:`from_mapping`.
    """

    p_value: float = 0.05
    distance_threshold: float = 0.1
    psi_threshold: float = 0.2
    drift_share: float = 0.5
    large_sample: int = 1000
    tracking_signal_limit: float = 4.0
    window: str = "28D"

    def __post_init__(self) -> None:
        checks = {
            "p_value": 0 < self.p_value < 1,
            "distance_threshold": self.distance_threshold > 0,
            "psi_threshold": self.psi_threshold > 0,
            "drift_share": 0 < self.drift_share <= 1,
            "large_sample": self.large_sample >= 10,
            "tracking_signal_limit": self.tracking_signal_limit > 0,
        }
        bad = [name for name, ok in checks.items() if not ok]
        if bad:
            raise ValueError(f"invalid drift thresholds: {', '.join(bad)} out of range")

    @classmethod
    def from_mapping(cls, values: Mapping[str, object]) -> DriftThresholds:
        """Build from a dict (e.g. ``spec.monitoring.model_dump()``); unknown keys are ignored."""
        defaults = cls()
        known = {f.name: type(getattr(defaults, f.name)) for f in fields(cls)}
        kwargs = {k: known[k](v) for k, v in values.items() if k in known and v is not None}
        return cls(**kwargs)  # type: ignore[arg-type]


@dataclass(frozen=True)
class Histogram:
    """Shares of reference and current values per bin, for the report's plots.

    Numeric: ``edges`` has one more entry than the shares (values beyond the 0.5 % / 99.5 %
    quantiles are counted in the end bins). Categorical: ``labels`` names each bin.
    """

    labels: list[str]
    reference: list[float]
    current: list[float]
    edges: list[float] | None = None


@dataclass(frozen=True)
class ColumnDrift:
    """Drift of one column between reference and current.

    ``method`` is ``ks`` or ``chi2`` (tests: ``statistic`` is the test statistic and
    ``threshold`` the significance) or ``wasserstein`` / ``jensenshannon`` (distances:
    ``threshold`` is the distance threshold and ``p_value`` the significance guard), or
    ``no data`` when one side has no values. ``missing_*`` are shares of missing values.

    From :func:`dataset_drift`: ``p_adjusted`` is the Benjamini–Hochberg adjusted p-value
    (``drifted`` compares it, not ``p_value``, with the significance), and with a cluster
    or time-cluster column ``icc`` / ``icc_time`` are the intra-series / intra-period
    correlations (see :class:`DesignEffect`), ``n_effective_*`` the sample sizes the p-value
    used and ``bound_*`` the clustering that set each (``series``, ``time``; None: rows
    independent). All None for a single :func:`column_drift`.
    """

    column: str
    kind: Kind
    method: str
    statistic: float
    p_value: float | None
    threshold: float
    drifted: bool
    psi: float
    psi_drifted: bool
    n_reference: int
    n_current: int
    missing_reference: float
    missing_current: float
    histogram: Histogram
    p_adjusted: float | None = None
    icc: float | None = None
    n_effective_reference: float | None = None
    n_effective_current: float | None = None
    icc_time: float | None = None
    bound_reference: Bound | None = None
    bound_current: Bound | None = None


@dataclass(frozen=True)
class DatasetDrift:
    """Drift of every compared column, and whether the data set as a whole drifted.

    ``skipped`` maps columns not compared to the reason; ``type_changed`` lists those whose
    type differs between reference and current (a schema change, not a date column).
    ``multiple_testing`` names the control of the columns' p-values (``benjamini-hochberg``
    or ``none``); ``cluster`` / ``time_cluster`` the columns whose series / periods gave
    effective sample sizes (None: not used).
    """

    columns: list[ColumnDrift]
    n_drifted: int
    share: float
    drift_share: float
    dataset_drifted: bool
    skipped: dict[str, str]
    type_changed: list[str]
    multiple_testing: str = "none"
    cluster: str | None = None
    time_cluster: str | None = None

    @property
    def drifted_columns(self) -> list[str]:
        return [c.column for c in self.columns if c.drifted]


# --- statistics on sorted samples and counts -------------------------------------------


def wasserstein_sorted(a: np.ndarray, b: np.ndarray) -> float:
    """Wasserstein-1 distance of two empirical distributions from their sorted samples.

    W1 = integral over u of |Q_a(u) - Q_b(u)|, evaluated at the midpoints of the larger
    sample's quantile grid: exact when one size divides the other, otherwise within
    (range of the smaller sample) / (size of the larger). O(n) after sorting: the
    smaller sample is repeated onto the larger one's grid, no gather.
    """
    if len(a) > len(b):
        a, b = b, a
    n, m = len(a), len(b)
    starts = np.ceil(np.arange(n + 1) * (m / n) - 0.5).clip(0, m).astype(np.int64)
    starts[-1] = m
    gaps = b - np.repeat(a, np.diff(starts))
    np.abs(gaps, out=gaps)
    return float(np.add.reduce(gaps, dtype=np.float64) / m)


def ks_statistic_sorted(a: np.ndarray, b: np.ndarray) -> float:
    """Exact two-sample KS statistic sup |F_a - F_b| from sorted samples (ties allowed).

    Between two distinct values of the smaller sample ``a`` its CDF is constant, so the
    supremum is reached at a value of ``a`` or just before the next one.
    """
    if len(a) > len(b):
        a, b = b, a
    last = np.ones(len(a), dtype=bool)
    last[:-1] = a[1:] != a[:-1]
    values = a[last]
    cdf_a = (np.flatnonzero(last) + 1) / len(a)
    before = np.searchsorted(b, values, side="left")
    at = before.copy()
    tied = before < len(b)
    tied[tied] = b[before[tied]] == values[tied]
    if tied.any():
        at[tied] = np.searchsorted(b, values[tied], side="right")
    cdf_b_at, cdf_b_before = at / len(b), before / len(b)
    inside = np.abs(cdf_a[:-1] - cdf_b_before[1:]).max(initial=0.0)
    return float(max(np.abs(cdf_a - cdf_b_at).max(), inside, cdf_b_before[0]))


def kolmogorov_sf(x: float) -> float:
    """P(K > x) for the Kolmogorov distribution (the KS statistic's limit law)."""
    if x < 0.2:
        return 1.0
    k = np.arange(1, 101)
    terms = (-1.0) ** (k - 1) * np.exp(-2.0 * k**2 * x**2)
    return float(np.clip(2.0 * terms.sum(), 0.0, 1.0))


def ks_pvalue(statistic: float, n: float, m: float) -> float:
    """Asymptotic p-value of a two-sample KS statistic for (effective) sample sizes n, m."""
    return kolmogorov_sf(math.sqrt(n * m / (n + m)) * statistic)


def chi2_sf(x: float, dof: int) -> float:
    """P(X > x) for a chi-square variable with integer ``dof`` (closed form, log space).

    Uses the regularised upper gamma Q(dof/2, x/2) built up from Q(1/2) = erfc(sqrt(y))
    or Q(1) = exp(-y) by Q(s + 1, y) = Q(s, y) + y^s e^-y / Gamma(s + 1).
    """
    if dof < 1:
        return 1.0
    if x <= 0:
        return 1.0
    y = x / 2.0
    start = 0.5 if dof % 2 else 1.0
    base = math.erfc(math.sqrt(y)) if dof % 2 else math.exp(-y)
    shapes = np.arange(start, dof / 2.0)
    if shapes.size == 0:
        return base
    log_terms = shapes * math.log(y) - y - np.array([math.lgamma(s + 1) for s in shapes])
    peak = log_terms.max()
    return float(min(1.0, base + math.exp(peak) * np.exp(log_terms - peak).sum()))


def chi2_homogeneity(
    reference_counts: np.ndarray, current_counts: np.ndarray,
) -> tuple[float, float]:
    """Chi-square test that two count vectors come from one distribution: (statistic, p)."""
    table = np.vstack([reference_counts, current_counts]).astype(np.float64)
    table = table[:, table.sum(axis=0) > 0]
    if table.shape[1] < 2:
        return 0.0, 1.0
    expected = table.sum(axis=1, keepdims=True) * table.sum(axis=0) / table.sum()
    statistic = float(((table - expected) ** 2 / expected).sum())
    return statistic, chi2_sf(statistic, table.shape[1] - 1)


def jensen_shannon(p: np.ndarray, q: np.ndarray) -> float:
    """Jensen–Shannon distance (base 2, in 0..1) between two count or share vectors."""
    p = np.asarray(p, dtype=np.float64) / np.sum(p)
    q = np.asarray(q, dtype=np.float64) / np.sum(q)
    m = (p + q) / 2

    def kl_to_m(x: np.ndarray) -> float:
        used = x > 0
        return float(np.sum(x[used] * np.log2(x[used] / m[used])))

    return math.sqrt(max(0.0, (kl_to_m(p) + kl_to_m(q)) / 2))


def psi(reference_share: np.ndarray, current_share: np.ndarray, eps: float = PSI_EPS) -> float:
    """Population stability index: sum of (cur - ref) * ln(cur / ref) over bins.

    Empty bins get the share ``eps`` so the logarithm stays finite.
    """
    ref = np.maximum(np.asarray(reference_share, dtype=np.float64), eps)
    cur = np.maximum(np.asarray(current_share, dtype=np.float64), eps)
    return float(np.sum((cur - ref) * np.log(cur / ref)))


def bh_adjusted(p_values: Sequence[float | None]) -> np.ndarray:
    """Benjamini–Hochberg adjusted p-values: min over j >= i of p_(j) * n / j, capped at 1.

    p_(j) is the j-th smallest of the n present p-values; None / NaN stay NaN and do not
    count in n.
    """
    p = np.array([math.nan if v is None else float(v) for v in p_values], dtype=np.float64)
    adjusted = np.full(p.shape, math.nan)
    present = np.flatnonzero(~np.isnan(p))
    if present.size == 0:
        return adjusted
    order = present[np.argsort(p[present], kind="stable")]
    scaled = p[order] * present.size / np.arange(1, present.size + 1)
    stepped = np.minimum.accumulate(scaled[::-1])[::-1]
    adjusted[order] = np.clip(stepped, p[order], 1.0)  # >= p also after rounding (p * n / n)
    return adjusted


def benjamini_hochberg(p_values: Sequence[float | None], q: float) -> np.ndarray:
    """Which hypotheses the Benjamini–Hochberg step-up procedure rejects at level ``q``.

    The i smallest p-values are rejected for the largest i with p_(i) <= i q / n, the
    same as adjusted p-value <= q. None / NaN are never rejected.
    """
    adjusted = bh_adjusted(p_values)
    return ~np.isnan(adjusted) & (adjusted <= q)


# --- clustered rows: effective sample sizes -------------------------------------------

Groups = tuple[np.ndarray, np.ndarray]


@dataclass(frozen=True)
class DesignEffect:
    """Clustering of a column's rows in series and in periods, and each sample's design effect.

    ``icc`` / ``icc_time``: the column's intra-series / intra-period correlation, computed
    per frame without the between-group variance both frames share (the larger of the two
    frames' values is reported). ``reference`` / ``current``: each sample's design effect,
    the larger of 1 + (m - 1) ICC over the two clusterings (m: mean rows per series, or
    per period, in that sample); its n rows count as n / design effect independent values,
    the smaller of the two effective sizes. ``bound_reference`` / ``bound_current`` name the
    clustering that set it (``series`` or ``time``; None: neither, rows independent).
    """

    icc: float
    reference: float
    current: float
    icc_time: float = 0.0
    bound_reference: Bound | None = None
    bound_current: Bound | None = None


def intraclass_correlation(values: np.ndarray, groups: np.ndarray) -> float:
    """One-way ANOVA ICC(1) of ``values`` grouped by ``groups``, clipped to 0..1.

    (MSB - MSW) / (MSB + (n0 - 1) MSW) with n0 = (N - sum n_i^2 / N) / (k - 1); 0 when
    undefined (fewer than two groups, no group with two values, constant values).
    """
    _, codes = np.unique(groups, return_inverse=True)
    k, n = int(codes.max(initial=-1)) + 1, len(values)
    if k < 2 or n <= k:
        return 0.0
    values = np.asarray(values, dtype=np.float64)
    sizes = np.bincount(codes, minlength=k)
    means = np.bincount(codes, weights=values, minlength=k) / sizes
    between = float(np.sum(sizes * (means - values.mean()) ** 2)) / (k - 1)
    within = float(np.sum((values - means[codes]) ** 2)) / (n - k)
    n0 = (n - float(np.sum(sizes.astype(np.float64) ** 2)) / n) / (k - 1)
    denominator = between + (n0 - 1) * within
    if denominator <= 0:
        return 0.0
    return float(np.clip((between - within) / denominator, 0.0, 1.0))


def _group_means(values: np.ndarray, groups: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The groups present and the mean value of each."""
    keys, codes = np.unique(groups, return_inverse=True)
    return keys, np.bincount(codes, weights=values) / np.bincount(codes)


def shared_variance(
    reference: np.ndarray, reference_groups: np.ndarray, current: np.ndarray,
    current_groups: np.ndarray,
) -> float:
    """Between-group variance both frames share: covariance of the two frames' group means
    over the groups in both (0 with fewer than 3 such groups; clipped at 0).

    A fixed series level is in both frames' means; a deviation redrawn per frame, and the
    row noise, are not and average out of the covariance.
    """
    keys_r, means_r = _group_means(reference, reference_groups)
    keys_c, means_c = _group_means(current, current_groups)
    common, at_r, at_c = np.intersect1d(keys_r, keys_c, assume_unique=True, return_indices=True)
    if common.size < 3:
        return 0.0
    return max(0.0, float(np.cov(means_r[at_r], means_c[at_c])[0, 1]))


def _unshared_icc(values: np.ndarray, groups: np.ndarray, shared: float, overlap: float) -> float:
    """ICC of one frame minus the shared variance's share of it, scaled by ``overlap``."""
    icc = intraclass_correlation(values, groups)
    variance = float(np.var(values, ddof=1)) if values.size > 1 else 0.0
    if icc <= 0 or variance <= 0:
        return icc
    return max(0.0, icc - overlap * min(1.0, shared / variance))


def _overlap(own: np.ndarray, other: np.ndarray) -> float:
    """Share of the other frame's rows in groups this frame has too."""
    return float(np.isin(other, own).mean()) if other.size else 0.0


def frame_iccs(
    reference: np.ndarray, reference_groups: np.ndarray, current: np.ndarray,
    current_groups: np.ndarray,
) -> tuple[float, float]:
    """(reference ICC, current ICC), each of its own frame's rows, without the shared part.

    A group effect present in both frames cancels in the comparison. Removing the shared
    variance in full would hold for identical groups; each frame removes it in proportion
    to the share of the other frame's rows in common groups, which for equal rows per group
    leaves exactly the variance the unmatched groups add.
    """
    shared = shared_variance(reference, reference_groups, current, current_groups)
    return (
        _unshared_icc(reference, reference_groups, shared, _overlap(reference_groups,
                                                                   current_groups)),
        _unshared_icc(current, current_groups, shared, _overlap(current_groups,
                                                               reference_groups)),
    )


def series_groups(
    reference: pd.DataFrame, current: pd.DataFrame, cluster: str | None,
) -> Groups | None:
    """Group codes (shared by both frames) of every row; None without the column.

    Used for series (``series_id``) and for periods (``ds``).
    """
    if cluster is None or cluster not in reference.columns or cluster not in current.columns:
        return None
    pooled = pd.concat([reference[cluster], current[cluster]], ignore_index=True).astype(str)
    codes, _ = pd.factorize(pooled)
    return codes[: len(reference)], codes[len(reference):]


def _float_values(values: pd.Series) -> np.ndarray:
    return values.to_numpy(dtype=np.float64, na_value=np.nan)


def _top_category(reference: pd.Series, current: pd.Series) -> tuple[np.ndarray, np.ndarray]:
    """1.0 where the value is the most frequent category of both frames (missing counts)."""
    pooled = pd.concat([reference, current], ignore_index=True).astype(object)
    counts = pooled.value_counts(dropna=False)
    if counts.empty:
        hit = np.zeros(len(pooled))
    else:
        top = counts.index[0]
        hit = (pooled.isna() if pd.isna(top) else pooled.eq(top)).to_numpy(dtype=np.float64)
    return hit[: len(reference)], hit[len(reference):]


def _design(groups: np.ndarray, icc: float) -> float:
    if groups.size == 0:
        return 1.0
    return 1.0 + (groups.size / np.unique(groups).size - 1.0) * icc


def _clustering(
    r: np.ndarray, c: np.ndarray, keep: tuple[np.ndarray, np.ndarray], groups: Groups | None,
) -> tuple[float, float, float]:
    """(reported ICC, reference design effect, current design effect) of one clustering."""
    if groups is None:
        return 0.0, 1.0, 1.0
    g_r, g_c = groups[0][keep[0]], groups[1][keep[1]]
    icc_r, icc_c = frame_iccs(r, g_r, c, g_c)
    return max(icc_r, icc_c), _design(g_r, icc_r), _design(g_c, icc_c)


def _bound(series: float, time: float) -> Bound | None:
    if max(series, time) <= 1.0:
        return None
    return "time" if time > series else "series"


def design_effect(
    reference: pd.Series, current: pd.Series, series: Groups | None,
    time: Groups | None = None,
) -> DesignEffect:
    """Per-frame ICCs of a column grouped by series and by period, and design effects.

    Numeric columns use their finite values; categorical ones the indicator of the most
    frequent category, all rows (missing values are a category there too). Each sample's
    design effect is the larger of the two clusterings'.
    """
    if column_kind(reference) == "numeric":
        r, c = _float_values(reference), _float_values(current)
    else:
        r, c = _top_category(reference, current)
    keep = (np.isfinite(r), np.isfinite(c))
    r, c = r[keep[0]], c[keep[1]]
    icc, series_r, series_c = _clustering(r, c, keep, series)
    icc_time, time_r, time_c = _clustering(r, c, keep, time)
    return DesignEffect(
        icc=icc, reference=max(series_r, time_r), current=max(series_c, time_c),
        icc_time=icc_time, bound_reference=_bound(series_r, time_r),
        bound_current=_bound(series_c, time_c),
    )


def _effective_sizes(
    n_reference: int, n_current: int, design: DesignEffect | None,
) -> tuple[float, float] | None:
    """(n_eff reference, n_eff current), or None when rows count as independent."""
    if design is None or max(design.reference, design.current) <= 1.0:
        return None
    return n_reference / design.reference, n_current / design.current


class ClusterFields(TypedDict, total=False):
    """The :class:`ColumnDrift` fields describing clustered rows."""

    icc: float
    icc_time: float
    n_effective_reference: float
    n_effective_current: float
    bound_reference: Bound | None
    bound_current: Bound | None


def _cluster_fields(
    n_reference: int, n_current: int, design: DesignEffect | None,
) -> ClusterFields:
    """The ColumnDrift fields describing the effective sample sizes (empty without)."""
    if design is None:
        return {}
    return {"icc": design.icc, "icc_time": design.icc_time,
            "n_effective_reference": n_reference / design.reference,
            "n_effective_current": n_current / design.current,
            "bound_reference": design.bound_reference, "bound_current": design.bound_current}


# --- numeric columns ----------------------------------------------------------------


def _finite_sorted(values: pd.Series | np.ndarray) -> tuple[np.ndarray, float]:
    """Sorted finite values as float32, and the share of missing (NaN / inf) values."""
    if isinstance(values, pd.Series):
        values = values.to_numpy(dtype=np.float32, na_value=np.nan)
    array = np.asarray(values, dtype=np.float32)
    finite = np.isfinite(array)
    n_finite = int(np.count_nonzero(finite))
    missing = 1.0 - n_finite / len(array) if len(array) else 0.0
    kept = array if n_finite == len(array) else array[finite]
    return np.sort(kept), missing


def _bin_shares(sorted_values: np.ndarray, edges: np.ndarray) -> np.ndarray:
    """Shares of sorted values in the bins (-inf, e1], (e1, e2], ..., (ek, inf)."""
    cumulative = np.searchsorted(sorted_values, edges, side="right")
    counts = np.diff(np.concatenate([[0], cumulative, [len(sorted_values)]]))
    return counts / len(sorted_values)


def numeric_psi(reference: np.ndarray, current: np.ndarray) -> float:
    """PSI on 10 quantile bins of the (sorted) reference."""
    levels = np.arange(1, PSI_BINS) / PSI_BINS
    edges = np.unique(np.quantile(reference, levels))
    return psi(_bin_shares(reference, edges), _bin_shares(current, edges))


def _numeric_histogram(reference: np.ndarray, current: np.ndarray) -> Histogram:
    """Equal-width bins between the 0.5 % and 99.5 % quantiles of both samples."""
    def at(values: np.ndarray, q: float) -> float:
        return float(values[min(len(values) - 1, int(q * len(values)))])

    low = min(at(reference, 0.005), at(current, 0.005))
    high = max(at(reference, 0.995), at(current, 0.995))
    edges = np.linspace(low, high, HISTOGRAM_BINS + 1) if high > low else np.array([low, low])
    inner = edges[1:-1]
    return Histogram(
        labels=[f"{x:.4g}" for x in edges[:-1]],
        reference=_bin_shares(reference, inner).round(6).tolist(),
        current=_bin_shares(current, inner).round(6).tolist(),
        edges=[float(x) for x in edges],
    )


def _ks_test(reference: np.ndarray, current: np.ndarray) -> tuple[float, float]:
    from scipy.stats import ks_2samp

    result = ks_2samp(reference, current)
    return float(result.statistic), float(result.pvalue)


def _numeric_score(
    r: np.ndarray, c: np.ndarray, th: DriftThresholds,
    effective: tuple[float, float] | None = None,
) -> tuple[str, float, float, bool]:
    """(method, statistic, p-value, drifted) by the small/large-sample rule.

    With ``effective`` sample sizes the KS p-value is the limit law's at those sizes.
    """
    if len(r) <= th.large_sample and len(c) <= th.large_sample:
        if effective is None:
            statistic, p_value = _ks_test(r, c)
        else:
            statistic = ks_statistic_sorted(r, c)
            p_value = ks_pvalue(statistic, *effective)
        return "ks", statistic, p_value, p_value < th.p_value
    scale = float(r.std(dtype=np.float64))
    distance = wasserstein_sorted(r, c)
    normalised = distance / scale if scale > 0 else (0.0 if distance == 0 else math.inf)
    p_value = ks_pvalue(ks_statistic_sorted(r, c), *(effective or (len(r), len(c))))
    return "wasserstein", normalised, p_value, bool(
        normalised > th.distance_threshold and p_value < th.p_value
    )


def numeric_drift(
    column: str, reference: pd.Series | np.ndarray, current: pd.Series | np.ndarray,
    thresholds: DriftThresholds, design: DesignEffect | None = None,
) -> ColumnDrift:
    """Drift of a numeric column (KS on small samples, normalised Wasserstein on large).

    ``design``: p-values at the effective sample sizes of clustered rows.
    """
    r, r_missing = _finite_sorted(reference)
    c, c_missing = _finite_sorted(current)
    if len(r) == 0 or len(c) == 0:
        return _no_data(column, "numeric", thresholds, len(r), len(c), r_missing, c_missing)
    effective = _effective_sizes(len(r), len(c), design)
    method, statistic, p_value, drifted = _numeric_score(r, c, thresholds, effective)
    score = numeric_psi(r, c)
    return ColumnDrift(
        column=column, kind="numeric", method=method, statistic=statistic, p_value=p_value,
        threshold=thresholds.p_value if method == "ks" else thresholds.distance_threshold,
        drifted=drifted, psi=score, psi_drifted=score > thresholds.psi_threshold,
        n_reference=len(r), n_current=len(c), missing_reference=r_missing,
        missing_current=c_missing, histogram=_numeric_histogram(r, c),
        **_cluster_fields(len(r), len(c), design),
    )


def _no_data(
    column: str, kind: Kind, th: DriftThresholds, n_ref: int, n_cur: int,
    ref_missing: float, cur_missing: float,
) -> ColumnDrift:
    return ColumnDrift(
        column=column, kind=kind, method="no data", statistic=math.nan, p_value=None,
        threshold=th.distance_threshold, drifted=False, psi=math.nan, psi_drifted=False,
        n_reference=n_ref, n_current=n_cur, missing_reference=ref_missing,
        missing_current=cur_missing, histogram=Histogram(labels=[], reference=[], current=[]),
    )


# --- categorical columns ------------------------------------------------------------


def _as_categorical(values: pd.Series | np.ndarray) -> pd.Categorical:
    if isinstance(values, pd.Series) and isinstance(values.dtype, pd.CategoricalDtype):
        return values.array  # type: ignore[return-value]
    return pd.Categorical(values)


def _counts_on(labels: pd.Index, values: pd.Categorical) -> np.ndarray:
    """Counts per label (last slot: missing) for categorical values with their own codes."""
    per_code = np.bincount(values.codes.astype(np.int64) + 1, minlength=len(values.categories) + 1)
    counts = np.zeros(len(labels) + 1, dtype=np.int64)
    counts[labels.get_indexer(values.categories)] = per_code[1:]
    counts[-1] = per_code[0]
    return counts


def category_counts(
    reference: pd.Series | np.ndarray, current: pd.Series | np.ndarray,
) -> tuple[list[str], np.ndarray, np.ndarray]:
    """Labels (sorted) and aligned counts of both samples; missing values are a category.

    Beyond ``MAX_CATEGORIES`` the rarest categories (by combined share) are pooled.
    """
    ref, cur = _as_categorical(reference), _as_categorical(current)
    labels = ref.categories.append(cur.categories).unique()
    labels = labels[np.argsort([str(x) for x in labels], kind="stable")]
    ref_counts, cur_counts = _counts_on(labels, ref), _counts_on(labels, cur)
    names = [str(x) for x in labels] + [MISSING_LABEL]
    if ref_counts[-1] == 0 and cur_counts[-1] == 0:
        names, ref_counts, cur_counts = names[:-1], ref_counts[:-1], cur_counts[:-1]
    return _pool_rare(names, ref_counts, cur_counts)


def _pool_rare(
    names: list[str], ref: np.ndarray, cur: np.ndarray,
) -> tuple[list[str], np.ndarray, np.ndarray]:
    if len(names) <= MAX_CATEGORIES:
        return names, ref, cur
    weight = ref / max(ref.sum(), 1) + cur / max(cur.sum(), 1)
    order = np.argsort(-weight, kind="stable")
    keep, rest = order[: MAX_CATEGORIES - 1], order[MAX_CATEGORIES - 1 :]
    pooled = [names[i] for i in keep] + [OTHER_LABEL]
    return pooled, np.append(ref[keep], ref[rest].sum()), np.append(cur[keep], cur[rest].sum())


def _chi2_test(ref_counts: np.ndarray, cur_counts: np.ndarray) -> tuple[float, float]:
    from scipy.stats import chi2_contingency

    table = np.vstack([ref_counts, cur_counts])
    table = table[:, table.sum(axis=0) > 0]
    if table.shape[1] < 2:
        return 0.0, 1.0
    result = chi2_contingency(table)
    return float(result.statistic), float(result.pvalue)


def _categorical_score(
    ref: np.ndarray, cur: np.ndarray, th: DriftThresholds,
    effective: tuple[float, float] | None = None,
) -> tuple[str, float, float, bool]:
    """(method, statistic, p-value, drifted); with ``effective`` sample sizes the
    chi-square runs on the counts scaled to them (no continuity correction)."""
    counts = (ref, cur) if effective is None else (
        ref * (effective[0] / ref.sum()), cur * (effective[1] / cur.sum()))
    if ref.sum() <= th.large_sample and cur.sum() <= th.large_sample:
        test = _chi2_test if effective is None else chi2_homogeneity
        statistic, p_value = test(*counts)
        return "chi2", statistic, p_value, p_value < th.p_value
    distance = jensen_shannon(ref, cur)
    _, p_value = chi2_homogeneity(*counts)
    drifted = distance > th.distance_threshold and p_value < th.p_value
    return "jensenshannon", distance, p_value, bool(drifted)


def categorical_drift(
    column: str, reference: pd.Series | np.ndarray, current: pd.Series | np.ndarray,
    thresholds: DriftThresholds, design: DesignEffect | None = None,
) -> ColumnDrift:
    """Drift of a categorical column (chi-square on small samples, Jensen–Shannon on large).

    ``design``: p-values at the effective sample sizes of clustered rows.
    """
    names, ref, cur = category_counts(reference, current)
    n_ref, n_cur = int(ref.sum()), int(cur.sum())
    missing = [names.index(MISSING_LABEL)] if MISSING_LABEL in names else []
    ref_missing = float(ref[missing].sum() / n_ref) if n_ref else 0.0
    cur_missing = float(cur[missing].sum() / n_cur) if n_cur else 0.0
    if n_ref == 0 or n_cur == 0:
        return _no_data(column, "categorical", thresholds, n_ref, n_cur, ref_missing, cur_missing)
    effective = _effective_sizes(n_ref, n_cur, design)
    method, statistic, p_value, drifted = _categorical_score(ref, cur, thresholds, effective)
    ref_share, cur_share = ref / n_ref, cur / n_cur
    score = psi(ref_share, cur_share)
    return ColumnDrift(
        column=column, kind="categorical", method=method, statistic=statistic,
        p_value=p_value, drifted=drifted, psi=score, psi_drifted=score > thresholds.psi_threshold,
        threshold=thresholds.p_value if method == "chi2" else thresholds.distance_threshold,
        n_reference=n_ref, n_current=n_cur, missing_reference=ref_missing,
        missing_current=cur_missing,
        histogram=Histogram(names, ref_share.round(6).tolist(), cur_share.round(6).tolist()),
        **_cluster_fields(n_ref, n_cur, design),
    )


# --- columns and data sets ----------------------------------------------------------


def column_kind(values: pd.Series) -> Kind | None:
    """``numeric``, ``categorical`` (text, category, bool) or None (dates: not compared)."""
    dtype = values.dtype
    if pd.api.types.is_bool_dtype(dtype):
        return "categorical"
    if pd.api.types.is_datetime64_any_dtype(dtype) or pd.api.types.is_timedelta64_dtype(dtype):
        return None
    return "numeric" if pd.api.types.is_numeric_dtype(dtype) else "categorical"


def column_drift(
    reference: pd.Series, current: pd.Series, thresholds: DriftThresholds,
    column: str | None = None, design: DesignEffect | None = None,
) -> ColumnDrift:
    """Drift of one column; also prediction drift (``yhat``) and target drift (``y``).

    Drifted at the raw p-value; ``design`` (from :func:`dataset_drift`) gives the
    effective sample sizes of clustered rows.
    """
    name = column if column is not None else str(reference.name)
    kind = column_kind(reference)
    if kind != column_kind(current) or kind is None:
        raise ValueError(f"column {name!r}: cannot compare {reference.dtype} with {current.dtype}")
    measure = numeric_drift if kind == "numeric" else categorical_drift
    return measure(name, reference, current, thresholds, design)


def _skip_reason(reference: pd.Series, current: pd.Series) -> str | None:
    """Why a column is not compared (dates, type changed), None when it is."""
    kind, other = column_kind(reference), column_kind(current)
    if kind is not None and kind == other:
        return None
    what = "dates" if kind is None and other is None else "type changed"
    return f"{what}: {reference.dtype} vs {current.dtype}"


def dataset_drift(
    reference: pd.DataFrame, current: pd.DataFrame, thresholds: DriftThresholds,
    columns: Sequence[str] | None = None, cluster: str | None = "series_id",
    time_cluster: str | None = "ds",
) -> DatasetDrift:
    """Drift of every common (or listed) column, and whether the data set drifted.

    Date columns and columns whose type differs between the frames are skipped, with
    the reason in ``skipped``. The columns' p-values are controlled together
    (Benjamini–Hochberg at ``p_value``); when both frames have the ``cluster`` (series) or
    ``time_cluster`` (period) column, rows sharing a series or a period give effective
    sample sizes, the smaller of the two per sample (None, or a column either frame
    lacks: that clustering is not used; neither: rows count as independent).
    """
    names = list(columns) if columns is not None else [
        c for c in reference.columns if c in current.columns
    ]
    series = series_groups(reference, current, cluster)
    time = series_groups(reference, current, time_cluster)
    results: list[ColumnDrift] = []
    skipped: dict[str, str] = {}
    for name in names:
        reason = _skip_reason(reference[name], current[name])
        if reason is not None:
            skipped[str(name)] = reason
            continue
        design = None if series is None and time is None else design_effect(
            reference[name], current[name], series, time)
        results.append(column_drift(reference[name], current[name], thresholds, str(name), design))
    return summarise_drift(
        control_false_discoveries(results, thresholds), thresholds.drift_share, skipped,
        multiple_testing=BENJAMINI_HOCHBERG, cluster=None if series is None else cluster,
        time_cluster=None if time is None else time_cluster,
    )


def control_false_discoveries(
    columns: Sequence[ColumnDrift], thresholds: DriftThresholds,
) -> list[ColumnDrift]:
    """Re-decide each column under Benjamini–Hochberg at q = ``p_value``: drifted when the
    adjusted p-value is <= q and, on the distance path, the distance is above its threshold."""
    adjusted = bh_adjusted([c.p_value for c in columns])
    rejected = benjamini_hochberg([c.p_value for c in columns], thresholds.p_value)
    return [
        replace(c, p_adjusted=None if math.isnan(a) else float(a), drifted=bool(
            hit and (c.method in TESTS or c.statistic > thresholds.distance_threshold)
        ))
        for c, a, hit in zip(columns, adjusted, rejected, strict=True)
    ]


def summarise_drift(
    columns: list[ColumnDrift], drift_share: float, skipped: dict[str, str] | None = None,
    multiple_testing: str = "none", cluster: str | None = None,
    time_cluster: str | None = None,
) -> DatasetDrift:
    """Dataset drift: share of drifted columns >= ``drift_share``."""
    n_drifted = sum(c.drifted for c in columns)
    share = n_drifted / len(columns) if columns else 0.0
    return DatasetDrift(
        columns=columns, n_drifted=n_drifted, share=share, drift_share=drift_share,
        dataset_drifted=bool(columns) and share >= drift_share, skipped=skipped or {},
        type_changed=[k for k, v in (skipped or {}).items() if v.startswith("type changed")],
        multiple_testing=multiple_testing, cluster=cluster, time_cluster=time_cluster,
    )
