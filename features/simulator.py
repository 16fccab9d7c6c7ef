"""The embedded retail simulator: a seeded, vectorised retail chain for demos, tests and benches.

A chain of stores sells product categories to customers of three segments. The expected
number of transaction lines per (day, store, category, segment) is

    store size x category popularity x trend x yearly season x weekday x holiday
    x segment share x promotion response x noise   (x regime shift from ``shift_at``)

and the lines are Poisson draws of it. Each line then gets a customer (of that segment,
signed up by that day, from the store's region unless bought online), a quantity (the
segment's basket size, raised by promotions through its price elasticity; ~1 % returns
as negative quantities) and a unit price (the category's list price x the segment's price
tier x store price index x inflation, cut by the planned discount on promotion days).

Segments buy differently: budget customers buy often in bulk, cheap and promo-driven;
premium customers buy pricier items, less price-sensitive, more online, with their own
category mix. Promotions are planned per (week, category), chain-wide, and are written to
the calendar for future dates too (a planner knows them in advance).

Outputs (salescast's default column names):

* ``sales``: ``date`` (datetime64, day), ``store`` ("S01"...), ``category`` (a readable
  name: "grocery", "electronics", ...), ``customer_id`` ("CU00001"...), ``quantity``
  (int32; negative = return), ``unit_price`` (float64), ``promo`` (int8 0/1),
  ``channel`` ("store" / "online"). The four text columns are pandas ``category`` dtype
  (memory-lean at 10 M lines); rows are sorted by date, store, category.
* ``customers``: ``customer_id``, ``segment``, ``region`` (pandas "str"),
  ``signup_date`` (datetime64); ids grow with signup date, ~30 % sign up in the range.
* ``calendar``: one row per (date, category) up to ``future_periods`` past the sales:
  ``date``, ``category``, ``holiday`` (int8), ``holiday_name`` ("str", missing on normal
  days), ``promo`` (int8), ``discount`` (float64 fraction, 0 without promotion).

Determinism: every random quantity comes from its own named stream of the seed, and all
arrays are day-major, so a regime shift at ``shift_at`` leaves every row before that date
identical to the unshifted run of the same seed.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
from scipy.signal import lfilter

from features.config import SimulatorConfig

log = logging.getLogger(__name__)

REGIONS = ("north", "south", "east", "west")
CHANNELS = ("store", "online")
DEFAULT_LINES_PER_SERIES_DAY = 4.0
RETURN_SHARE = 0.01
INFLATION_PER_YEAR = 0.025
ONLINE_GROWTH_PER_YEAR = 0.03
PRE_EXISTING_CUSTOMERS = 0.7
DAYS_PER_YEAR = 365.25
# Mon..Sun multipliers of in-store traffic: Friday and the weekend are busiest.
WEEKDAY_LIFT = np.array([0.85, 0.85, 0.9, 0.95, 1.1, 1.4, 1.15])
_STREAMS = (
    "chain", "customers", "promotions", "noise", "lines",
    "channel", "customer_pick", "quantity", "returns", "price",
)


@dataclass(frozen=True)
class SegmentBehaviour:
    """How one customer segment buys.

    ``line_share / population_share`` is its purchase frequency per customer;
    ``basket`` its mean units per line; ``price_tier`` multiplies the list price (the
    items it picks); ``elasticity`` is its price elasticity of demand (promotion
    response); ``category_tilt`` > 0 leans towards premium categories.
    """

    name: str
    population_share: float
    line_share: float
    basket: float
    price_tier: float
    elasticity: float
    online_share: float
    category_tilt: float


SEGMENTS = (
    SegmentBehaviour("budget", 0.45, 0.30, 1.9, 0.80, 2.8, 0.08, -1.0),
    SegmentBehaviour("regular", 0.38, 0.45, 1.4, 1.00, 1.6, 0.15, 0.0),
    SegmentBehaviour("premium", 0.17, 0.25, 1.15, 1.35, 0.7, 0.30, 1.0),
)


@dataclass(frozen=True)
class CategoryProfile:
    """A product category: list price, season shape, buyer profile, units per line factor.

    ``season`` is "xmas" (December peak), "summer" (July peak) or "flat";
    ``premium_score`` in [-1, 1] says how much premium (vs budget) customers favour it.
    """

    name: str
    list_price: float
    season: str
    premium_score: float
    basket: float


CATEGORIES = tuple(
    CategoryProfile(*row)
    for row in (
        ("grocery", 3.5, "flat", -0.6, 2.0),
        ("electronics", 120.0, "xmas", 0.8, 1.0),
        ("apparel", 30.0, "xmas", 0.5, 1.3),
        ("garden", 18.0, "summer", 0.2, 1.3),
        ("beverages", 2.5, "summer", -0.4, 2.2),
        ("household", 6.0, "flat", -0.5, 1.6),
        ("toys", 25.0, "xmas", 0.2, 1.2),
        ("personal_care", 8.0, "flat", 0.3, 1.4),
        ("sports", 35.0, "summer", 0.4, 1.1),
        ("books", 14.0, "xmas", 0.5, 1.1),
        ("pet", 9.0, "flat", -0.1, 1.5),
        ("footwear", 55.0, "summer", 0.4, 1.0),
        ("kitchen", 22.0, "xmas", 0.3, 1.1),
        ("baby", 12.0, "flat", 0.0, 1.5),
        ("outdoor", 45.0, "summer", 0.3, 1.0),
        ("beauty", 18.0, "xmas", 0.7, 1.2),
        ("stationery", 4.0, "flat", -0.2, 1.8),
        ("home_decor", 28.0, "xmas", 0.6, 1.1),
        ("snacks", 3.0, "summer", -0.5, 2.0),
        ("hardware", 15.0, "flat", -0.2, 1.3),
        ("jewelry", 80.0, "xmas", 0.9, 1.0),
        ("frozen", 5.0, "summer", -0.3, 1.7),
        ("furniture", 150.0, "flat", 0.6, 1.0),
        ("wine", 12.0, "xmas", 0.5, 1.6),
        ("automotive", 20.0, "flat", -0.1, 1.1),
        ("pharmacy", 9.0, "flat", 0.1, 1.2),
    )
)
# log-lift amplitudes (christmas bump, summer bump) per season shape
SEASON_AMPLITUDES = {"xmas": (0.9, 0.0), "summer": (0.25, 0.5), "flat": (0.25, 0.05)}
# Shopping days and their traffic multiplier.
HOLIDAY_LIFT = {
    "New Year's Day": 1.3,
    "Easter Monday": 1.35,
    "Labour Day": 1.25,
    "Black Friday": 2.2,
    "Cyber Monday": 1.6,
    "Christmas Eve": 1.7,
    "Boxing Day": 1.8,
}
PROMO_WEEK_RATE = 0.18
BLACK_FRIDAY_PROMO_RATE = 0.7


@dataclass(frozen=True)
class RegimeShift:
    """What changes from ``shift_at`` on: the market the drift monitor must notice.

    Prices rise, customers become more promotion-sensitive, promotions get more frequent
    and deeper, budget customers replace premium ones, more is bought online, and the
    first categories' demand drops / jumps (``category_levels``; the rest unchanged).
    """

    price_level: float = 1.15
    elasticity_factor: float = 1.3
    promo_rate_factor: float = 1.6
    extra_discount: float = 0.05
    segment_demand: tuple[float, ...] = (1.4, 1.0, 0.7)
    online_bump: float = 0.10
    category_levels: tuple[float, ...] = (0.55, 1.4, 0.8)


REGIME_SHIFT = RegimeShift()


@dataclass(frozen=True)
class SimulatedRetail:
    """The three raw tables of a simulated chain (see the module docstring)."""

    sales: pd.DataFrame  # transaction lines
    customers: pd.DataFrame
    calendar: pd.DataFrame


@dataclass(frozen=True)
class _Timeline:
    """Calendar days (sales days first, then the future ones) and the regime per day."""

    days: pd.DatetimeIndex
    n_sales_days: int
    after_shift: np.ndarray  # bool per calendar day
    holiday_names: pd.Series  # per calendar day, missing on ordinary days

    @property
    def sales_days(self) -> pd.DatetimeIndex:
        return self.days[: self.n_sales_days]

    @property
    def years(self) -> np.ndarray:
        """Years elapsed since the first day, per calendar day."""
        return np.arange(len(self.days)) / DAYS_PER_YEAR

    def factor(self, value: float) -> np.ndarray:
        """Per calendar day: ``value`` after the shift, 1 before."""
        return np.where(self.after_shift, value, 1.0)

    def unshifted(self) -> _Timeline:
        no_shift = np.zeros(len(self.days), dtype=bool)
        return _Timeline(self.days, self.n_sales_days, no_shift, self.holiday_names)


@dataclass(frozen=True)
class _Chain:
    """Drawn parameters of the chain: stores, categories, their levels and growth."""

    store_names: list[str]
    store_region: np.ndarray  # region index per store
    store_size: np.ndarray
    store_price_index: np.ndarray
    store_growth: np.ndarray  # log growth per year
    categories: tuple[CategoryProfile, ...]
    popularity: np.ndarray
    category_growth: np.ndarray
    season_amplitude: np.ndarray  # (categories, 2): christmas, summer
    season_phase: np.ndarray

    @property
    def category_names(self) -> list[str]:
        return [category.name for category in self.categories]


@dataclass(frozen=True)
class _PromoPlan:
    """Planned chain-wide promotions, (calendar day, category)."""

    promo: np.ndarray  # int8 0/1
    discount: np.ndarray  # fraction, 0 without promotion


@dataclass(frozen=True)
class _Customers:
    """Customers as arrays: segment and region index, signup day relative to the start."""

    segment: np.ndarray
    region: np.ndarray
    signup_day: np.ndarray  # sorted ascending; negative = before the simulated range
    ids: list[str]


@dataclass(frozen=True)
class _Lines:
    """Transaction lines as indices: day, store, category, segment."""

    day: np.ndarray
    store: np.ndarray
    category: np.ndarray
    segment: np.ndarray

    def __len__(self) -> int:
        return len(self.day)


def sales_day_count(config: SimulatorConfig) -> int:
    """Number of days with sales: ``periods`` periods of ``freq``."""
    return config.periods * (7 if config.freq == "W" else 1)


def lines_per_day_for(config: SimulatorConfig, total_lines: int) -> float:
    """The ``lines_per_day`` that makes the unshifted simulation about ``total_lines`` long."""
    return total_lines / sales_day_count(config)


def simulate_retail(
    config: SimulatorConfig, lines_per_day: float | None = None
) -> SimulatedRetail:
    """Simulate a retail chain's sales lines, customers and calendar (seeded, vectorised).

    ``lines_per_day`` (else ``config.lines_per_day``, else 4 per store x category) is the
    mean number of transaction lines per day over the range before any regime shift.
    """
    volume = lines_per_day or config.lines_per_day or _default_lines_per_day(config)
    if volume <= 0:
        raise ValueError(f"lines_per_day must be positive, got {volume}")
    rngs = _streams(config.seed)
    timeline = _timeline(config)
    chain = _draw_chain(rngs["chain"], config)
    customers = _draw_customers(rngs["customers"], config, chain, timeline)
    expected, plan = _expected_demand(rngs, chain, timeline, volume)
    lines = _draw_lines(rngs["lines"], expected)
    sales = _sales_frame(rngs, lines, chain, customers, plan, timeline)
    log.info("simulated %d sales lines over %d days, %d stores x %d categories",
             len(sales), timeline.n_sales_days, len(chain.store_names), len(chain.categories))
    return SimulatedRetail(sales, _customers_frame(customers, timeline),
                           _calendar_frame(chain, plan, timeline))


def _expected_demand(
    rngs: dict[str, np.random.Generator], chain: _Chain, timeline: _Timeline,
    lines_per_day: float,
) -> tuple[np.ndarray, _PromoPlan]:
    """Expected lines per (day, store, category, segment), and the promotion plan.

    The volume is calibrated on the unshifted market, so a regime shift changes nothing
    before ``shift_at``.
    """
    uniforms = _promo_uniforms(rngs["promotions"], timeline, len(chain.categories))
    shape = (timeline.n_sales_days, len(chain.store_names), len(chain.categories))
    noise = _demand_noise(rngs["noise"], shape)
    unshifted = timeline.unshifted()
    reference = _expected_lines(chain, unshifted, _plan_promotions(uniforms, unshifted), noise)
    plan = _plan_promotions(uniforms, timeline)
    scale = lines_per_day * timeline.n_sales_days / reference.sum()
    return _expected_lines(chain, timeline, plan, noise) * scale, plan


def write_retail_data(data: SimulatedRetail, out_dir: Path) -> dict[str, Path]:
    """Write the three tables as ``<table>.parquet`` into ``out_dir``; table -> path."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    paths: dict[str, Path] = {}
    for table in ("sales", "customers", "calendar"):
        path = out_dir / f"{table}.parquet"
        getattr(data, table).to_parquet(path, index=False)
        paths[table] = path
    log.info("wrote retail data (%d sales lines) to %s", len(data.sales), out_dir)
    return paths


def holidays(days: pd.DatetimeIndex) -> pd.Series:
    """Holiday name per day (missing on ordinary days): the chain's shopping holidays."""
    years = np.arange(days.year.min(), days.year.max() + 1)
    table = pd.concat([pd.Series(name, index=dates, dtype="str")
                       for name, dates in _holiday_dates(years).items()])
    table = table[~table.index.duplicated()].sort_index()
    return table.reindex(days)


def _holiday_dates(years: np.ndarray) -> dict[str, pd.DatetimeIndex]:
    easter = _easter_sunday(years)
    november_first = pd.to_datetime({"year": years, "month": 11, "day": 1})
    thanksgiving = november_first + pd.to_timedelta(
        (3 - november_first.dt.day_of_week) % 7 + 21, unit="D")
    black_friday = pd.DatetimeIndex(thanksgiving + pd.Timedelta(days=1))

    def fixed(month: int, day: int) -> pd.DatetimeIndex:
        return pd.DatetimeIndex(pd.to_datetime({"year": years, "month": month, "day": day}))

    return {
        "New Year's Day": fixed(1, 1),
        "Easter Monday": easter + pd.Timedelta(days=1),
        "Labour Day": fixed(5, 1),
        "Black Friday": black_friday,
        "Cyber Monday": black_friday + pd.Timedelta(days=3),
        "Christmas Eve": fixed(12, 24),
        "Boxing Day": fixed(12, 26),
    }


def _easter_sunday(years: np.ndarray) -> pd.DatetimeIndex:
    """Gregorian Easter Sunday per year (anonymous Gregorian algorithm, vectorised)."""
    a, b, c = years % 19, years // 100, years % 100
    d, e = b // 4, b % 4
    g = (b - (b + 8) // 25 + 1) // 3
    h = (19 * a + b - d - g + 15) % 30
    i, k = c // 4, c % 4
    weekday = (32 + 2 * e + 2 * i - h - k) % 7
    m = (a + 11 * h + 22 * weekday) // 451
    month = (h + weekday - 7 * m + 114) // 31
    day = (h + weekday - 7 * m + 114) % 31 + 1
    return pd.DatetimeIndex(pd.to_datetime({"year": years, "month": month, "day": day}))


def _streams(seed: int) -> dict[str, np.random.Generator]:
    """One independent generator per random quantity, so none shifts another's draws."""
    children = np.random.SeedSequence(seed).spawn(len(_STREAMS))
    return {name: np.random.default_rng(child) for name, child in zip(_STREAMS, children,
                                                                          strict=True)}


def _default_lines_per_day(config: SimulatorConfig) -> float:
    return DEFAULT_LINES_PER_SERIES_DAY * config.stores * config.categories


def _timeline(config: SimulatorConfig) -> _Timeline:
    step = 7 if config.freq == "W" else 1
    n_sales = sales_day_count(config)
    days = pd.date_range(config.start, periods=n_sales + config.future_periods * step, freq="D")
    if config.shift_at is None:
        after = np.zeros(len(days), dtype=bool)
    else:
        after = np.asarray(days >= pd.Timestamp(config.shift_at))
    return _Timeline(days, n_sales, after, holidays(days))


def _draw_chain(rng: np.random.Generator, config: SimulatorConfig) -> _Chain:
    n_stores, n_categories = config.stores, config.categories
    width = max(2, len(str(n_stores)))
    categories = CATEGORIES[:n_categories]
    amplitude = np.array([SEASON_AMPLITUDES[category.season] for category in categories])
    return _Chain(
        store_names=[f"S{i + 1:0{width}d}" for i in range(n_stores)],
        store_region=rng.permutation(np.arange(n_stores) % len(REGIONS)),
        store_size=rng.lognormal(0.0, 0.5, n_stores),
        store_price_index=rng.normal(1.0, 0.04, n_stores),
        store_growth=rng.normal(0.0, 0.015, n_stores),
        categories=categories,
        popularity=rng.lognormal(0.0, 0.4, n_categories),
        category_growth=rng.normal(0.09, 0.025, n_categories),
        season_amplitude=amplitude * rng.uniform(0.8, 1.2, (n_categories, 1)),
        season_phase=rng.uniform(0.0, 2 * np.pi, n_categories),
    )


def _draw_customers(
    rng: np.random.Generator, config: SimulatorConfig, chain: _Chain, timeline: _Timeline
) -> _Customers:
    """Customers with a segment, a region (weighted by store size) and a signup day.

    The first ~70 % signed up in the three years before the start, the rest during it.
    """
    n = config.customers
    shares = np.array([segment.population_share for segment in SEGMENTS])
    segment = rng.choice(len(SEGMENTS), size=n, p=shares / shares.sum())
    region_weight = np.bincount(chain.store_region, chain.store_size, minlength=len(REGIONS))
    region = rng.choice(len(REGIONS), size=n, p=region_weight / region_weight.sum())
    n_old = int(np.ceil(PRE_EXISTING_CUSTOMERS * n))
    old = rng.integers(-3 * 365, 0, n_old)
    new = rng.integers(0, timeline.n_sales_days, n - n_old)
    signup_day = np.sort(np.concatenate([old, new]))
    width = max(5, len(str(n)))
    return _Customers(segment, region, signup_day, [f"CU{i + 1:0{width}d}" for i in range(n)])


def _promo_uniforms(
    rng: np.random.Generator, timeline: _Timeline, n_categories: int
) -> tuple[np.ndarray, np.ndarray]:
    """Uniform draws per (week, category): one decides the promotion, one its depth."""
    n_weeks = len(timeline.days) // 7 + 2
    return rng.random((n_weeks, n_categories)), rng.random((n_weeks, n_categories))


def _plan_promotions(uniforms: tuple[np.ndarray, np.ndarray], timeline: _Timeline) -> _PromoPlan:
    """Week-long (Monday-Sunday) promotions per category; busier in the Black Friday week."""
    days = timeline.days
    first_monday = days[0] - pd.Timedelta(days=int(days[0].day_of_week))
    week = np.asarray((days - first_monday).days // 7)
    black_friday_week = pd.Series(timeline.holiday_names.to_numpy() == "Black Friday")
    black_friday_week = black_friday_week.groupby(week).transform("any").to_numpy()
    rate = np.where(black_friday_week, BLACK_FRIDAY_PROMO_RATE, PROMO_WEEK_RATE)
    rate = np.minimum(rate * timeline.factor(REGIME_SHIFT.promo_rate_factor), 0.95)
    rate_draw, depth_draw = uniforms[0][week], uniforms[1][week]
    promo = rate_draw < rate[:, None]
    depth = 0.10 + 0.05 * np.floor(depth_draw * 5)
    depth = depth + np.where(timeline.after_shift, REGIME_SHIFT.extra_discount, 0.0)[:, None]
    return _PromoPlan(promo.astype(np.int8), np.where(promo, np.round(depth, 2), 0.0))


def _demand_noise(rng: np.random.Generator, shape: tuple[int, int, int]) -> np.ndarray:
    """Log-demand noise per (day, store, category): a persistent AR(1) level + daily noise."""
    phi, sigma, daily = 0.98, 0.02, 0.12
    innovations = rng.standard_normal(shape) * sigma
    innovations[0] /= np.sqrt(1 - phi**2)  # start in the stationary distribution
    persistent = lfilter([1.0], [1.0, -phi], innovations, axis=0)
    return persistent + daily * rng.standard_normal(shape)


def _yearly_log_lift(chain: _Chain, days: pd.DatetimeIndex) -> np.ndarray:
    """Yearly seasonality per (day, category): Christmas and summer peaks, January dip."""
    doy = days.day_of_year.to_numpy()
    christmas, summer = _bump(doy, 352, 16), _bump(doy, 196, 30)
    january = _bump(doy, 20, 12)
    wave = 0.05 * np.sin(2 * np.pi * doy[:, None] / DAYS_PER_YEAR + chain.season_phase)
    peaks = np.outer(christmas, chain.season_amplitude[:, 0])
    peaks += np.outer(summer, chain.season_amplitude[:, 1])
    return peaks - 0.2 * january[:, None] + wave


def _bump(day_of_year: np.ndarray, centre: int, width: float) -> np.ndarray:
    distance = np.abs(day_of_year - centre)
    distance = np.minimum(distance, 365 - distance)
    return np.exp(-0.5 * (distance / width) ** 2)


def _series_log_demand(chain: _Chain, timeline: _Timeline, noise: np.ndarray) -> np.ndarray:
    """Log of the expected lines per (day, store, category), before segments and promos."""
    days = timeline.sales_days
    years = timeline.years[: len(days), None, None]
    growth = chain.store_growth[None, :, None] + chain.category_growth[None, None, :]
    level = np.log(chain.store_size)[None, :, None] + np.log(chain.popularity)[None, None, :]
    names = timeline.holiday_names.iloc[: len(days)]
    holiday_lift = names.map(HOLIDAY_LIFT).fillna(1.0).to_numpy(dtype=float)
    calendar = np.log(WEEKDAY_LIFT[days.day_of_week] * holiday_lift)[:, None, None]
    season = _yearly_log_lift(chain, days)[:, None, :]
    return level + growth * years + season + calendar + noise


def _segment_mix(chain: _Chain) -> np.ndarray:
    """Share of each category's lines bought by each segment, (category, segment)."""
    score = np.array([category.premium_score for category in chain.categories])
    tilt = np.array([segment.category_tilt for segment in SEGMENTS])
    share = np.array([segment.line_share for segment in SEGMENTS])
    mix = share[None, :] * np.exp(np.outer(score, tilt))
    return mix / mix.sum(axis=1, keepdims=True)


def _price_response(plan: _PromoPlan, timeline: _Timeline) -> np.ndarray:
    """Multiplier (day, category, segment) of lines, and of units per line, on promotion.

    (1 - discount) ** -(e / 2): half the elasticity e acts on the number of lines, half on
    units per line, so units sold move by (1 - discount) ** -e.
    """
    elasticity = np.array([segment.elasticity for segment in SEGMENTS])
    elasticity = np.outer(timeline.factor(REGIME_SHIFT.elasticity_factor), elasticity)
    relative_price = 1.0 - plan.discount[:, :, None]
    return relative_price ** (-0.5 * elasticity[:, None, :])


def _segment_demand(chain: _Chain, timeline: _Timeline, plan: _PromoPlan) -> np.ndarray:
    """Multiplier per (day, category, segment): segment mix, promotions and the shift."""
    n_days, n_categories = timeline.n_sales_days, len(chain.categories)
    response = _price_response(plan, timeline)[:n_days]
    levels = np.ones(n_categories)
    n_shifted = min(n_categories, len(REGIME_SHIFT.category_levels))
    levels[:n_shifted] = REGIME_SHIFT.category_levels[:n_shifted]
    after = timeline.after_shift[:n_days]
    category_shift = np.where(after[:, None], levels[None, :], 1.0)
    segment_shift = np.where(after[:, None], np.array(REGIME_SHIFT.segment_demand)[None, :], 1.0)
    return (_segment_mix(chain)[None] * response * category_shift[:, :, None]
            * segment_shift[:, None, :])


def _expected_lines(
    chain: _Chain, timeline: _Timeline, plan: _PromoPlan, noise: np.ndarray
) -> np.ndarray:
    """Expected lines per (day, store, category, segment), up to a volume scale."""
    series = np.exp(_series_log_demand(chain, timeline, noise))
    return series[..., None] * _segment_demand(chain, timeline, plan)[:, None, :, :]


def _draw_lines(rng: np.random.Generator, expected: np.ndarray) -> _Lines:
    """Poisson line counts per cell, expanded to one index entry per line (day-major)."""
    counts = rng.poisson(expected.ravel())
    cell = np.repeat(np.arange(counts.size, dtype=np.int32), counts)
    _, n_stores, n_categories, n_segments = expected.shape
    cell, segment = np.divmod(cell, n_segments)
    cell, category = np.divmod(cell, n_categories)
    day, store = np.divmod(cell, n_stores)
    return _Lines(day, store, category, segment)


def _sales_frame(
    rngs: dict[str, np.random.Generator],
    lines: _Lines,
    chain: _Chain,
    customers: _Customers,
    plan: _PromoPlan,
    timeline: _Timeline,
) -> pd.DataFrame:
    online = _draw_online(rngs["channel"], lines, timeline)
    customer = _pick_customers(rngs["customer_pick"], lines, online, chain, customers)
    return pd.DataFrame({
        "date": timeline.days.to_numpy()[lines.day],
        "store": pd.Categorical.from_codes(lines.store, categories=chain.store_names),
        "category": pd.Categorical.from_codes(lines.category, categories=chain.category_names),
        "customer_id": pd.Categorical.from_codes(customer, categories=customers.ids),
        "quantity": _draw_quantities(rngs["quantity"], rngs["returns"], lines, plan, timeline),
        "unit_price": _draw_prices(rngs["price"], lines, chain, plan, timeline),
        "promo": plan.promo[lines.day, lines.category],
        "channel": pd.Categorical.from_codes(online.astype(np.int8), categories=CHANNELS),
    })


def _draw_online(rng: np.random.Generator, lines: _Lines, timeline: _Timeline) -> np.ndarray:
    """Whether each line was bought online: by segment, growing, jumping at the shift."""
    share = np.array([segment.online_share for segment in SEGMENTS])
    bump = np.where(timeline.after_shift, REGIME_SHIFT.online_bump, 0.0)
    daily = ONLINE_GROWTH_PER_YEAR * timeline.years + bump
    probability = share[lines.segment] + daily[lines.day]
    return rng.random(len(lines)) < probability


def _draw_quantities(
    rng: np.random.Generator,
    returns_rng: np.random.Generator,
    lines: _Lines,
    plan: _PromoPlan,
    timeline: _Timeline,
) -> np.ndarray:
    """Units per line: 1 + Poisson(basket - 1), promotions raise the basket; returns < 0."""
    segment_basket = np.array([segment.basket for segment in SEGMENTS])
    category_basket = np.array([category.basket for category in CATEGORIES])
    response = _price_response(plan, timeline)
    basket = (segment_basket[lines.segment] * category_basket[lines.category]
              * response[lines.day, lines.category, lines.segment])
    quantity = (1 + rng.poisson(np.maximum(basket - 1.0, 0.0))).astype(np.int32)
    is_return = returns_rng.random(len(lines)) < RETURN_SHARE
    return np.where(is_return, -quantity, quantity)


def _draw_prices(
    rng: np.random.Generator, lines: _Lines, chain: _Chain, plan: _PromoPlan, timeline: _Timeline
) -> np.ndarray:
    """Unit price: list price x segment tier x store index x inflation x item noise, less
    the planned discount; prices jump at the shift."""
    list_price = np.array([category.list_price for category in chain.categories])
    tier = np.array([segment.price_tier for segment in SEGMENTS])
    level = np.exp(INFLATION_PER_YEAR * timeline.years) * timeline.factor(
        REGIME_SHIFT.price_level)
    item = np.exp(0.15 * rng.standard_normal(len(lines), dtype=np.float32))
    price = (list_price[lines.category] * tier[lines.segment]
             * chain.store_price_index[lines.store] * level[lines.day] * item
             * (1.0 - plan.discount[lines.day, lines.category]))
    return np.round(price, 2)


def _pick_customers(
    rng: np.random.Generator,
    lines: _Lines,
    online: np.ndarray,
    chain: _Chain,
    customers: _Customers,
) -> np.ndarray:
    """A customer per line: same segment, signed up by that day, from the store's region
    (any region online). Falls back to any region, then to any signed-up customer."""
    n_regions, n_segments = len(REGIONS), len(SEGMENTS)
    anywhere = n_regions * n_segments + lines.segment
    local = chain.store_region[lines.store] * n_segments + lines.segment
    n_days = int(lines.day.max()) + 1 if len(lines) else 1
    index = _CustomerIndex.build(customers, n_regions, n_segments, n_days)
    group = np.where(online, anywhere, local)
    count = index.counts[group, lines.day]
    for fallback in (anywhere, np.full(len(lines), index.everyone)):
        empty = np.flatnonzero(count == 0)
        if empty.size == 0:
            break
        group[empty] = fallback[empty]
        count[empty] = index.counts[group[empty], lines.day[empty]]
    offset = np.minimum((rng.random(len(lines)) * count).astype(np.int64), count - 1)
    return index.members[index.starts[group] + offset]


@dataclass(frozen=True)
class _CustomerIndex:
    """Customers sorted by (group, signup day), to find who could have bought a line.

    Groups: (region, segment), then (segment) in any region, then everyone. A group's
    members signed up by day ``d`` are ``members[starts[g] : starts[g] + counts[g, d]]``.
    """

    members: np.ndarray  # customer index, grouped, by signup day within a group
    starts: np.ndarray  # first position of each group in ``members``
    counts: np.ndarray  # (group, sales day): members signed up by that day
    everyone: int  # the group of all customers

    @classmethod
    def build(
        cls, customers: _Customers, n_regions: int, n_segments: int, n_days: int
    ) -> _CustomerIndex:
        n = len(customers.ids)
        everyone = n_regions * n_segments + n_segments
        groups = np.concatenate([customers.region * n_segments + customers.segment,
                                 n_regions * n_segments + customers.segment,
                                 np.full(n, everyone)]).astype(np.int64)
        days = np.tile(customers.signup_day, 3).astype(np.int64)
        order = np.lexsort((days, groups))
        counts = np.empty((everyone + 1, n_days), dtype=np.int64)
        starts = np.searchsorted(groups[order], np.arange(everyone + 1), side="left")
        for group in range(everyone + 1):
            signups = days[order][groups[order] == group]
            counts[group] = np.searchsorted(signups, np.arange(n_days), side="right")
        return cls(np.tile(np.arange(n), 3)[order], starts, counts, everyone)


def _customers_frame(customers: _Customers, timeline: _Timeline) -> pd.DataFrame:
    signup = timeline.days[0] + pd.to_timedelta(customers.signup_day, unit="D")
    return pd.DataFrame({
        "customer_id": pd.array(customers.ids, dtype="str"),
        "segment": pd.array([SEGMENTS[i].name for i in customers.segment], dtype="str"),
        "region": pd.array([REGIONS[i] for i in customers.region], dtype="str"),
        "signup_date": signup,
    })


def _calendar_frame(chain: _Chain, plan: _PromoPlan, timeline: _Timeline) -> pd.DataFrame:
    """One row per (date, category), sales range plus the future: holidays, planned promos."""
    n_categories = len(chain.categories)
    names = timeline.holiday_names
    return pd.DataFrame({
        "date": np.repeat(timeline.days.to_numpy(), n_categories),
        "category": pd.array(np.tile(chain.category_names, len(timeline.days)), dtype="str"),
        "holiday": np.repeat(names.notna().to_numpy().astype(np.int8), n_categories),
        "holiday_name": pd.array(np.repeat(names.to_numpy(), n_categories), dtype="str"),
        "promo": plan.promo.ravel(),
        "discount": plan.discount.ravel(),
    })
