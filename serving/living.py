"""Living forecasts in the API: every series forecasts from its newest complete period.

The rule — what an origin is, what moves it, how workers agree — is :mod:`features.origin`;
this module applies it to the served champion:

* **Derived from the store.** A series' state is the champion's *trained* model rolled
  (``roll``: no refit) with that series' consecutive complete actuals after its training
  origin, as the prediction store holds them (with the realised exogenous values posted
  with them, else the plan). Nothing else feeds it, so every worker and a
  restarted process compute the same forecast for the same series and origin.
* **When.** A new champion is rolled to the store's actuals before it is swapped in
  (:meth:`LivingForecasts.prepare`). Afterwards a background thread re-derives the series
  whose actuals changed: at once for the actuals this process accepted (:meth:`notify`),
  and every ``roll_seconds`` for those other workers accepted (actuals received since its
  last look). A series whose actuals and origin did not change is not recomputed.
* **Swap.** The new state and the new entries of the changed series replace the old ones
  under the champion's lock, so a request plans on a consistent pair (``serving.forecasting``);
  no request waits for a roll: the request path only reads.
* **Record.** Each new (series, origin) forecast goes to ``forecast_history`` (accuracy by
  forecast lag) and its features to ``baseline_features`` (drift monitoring).
* **As of.** :meth:`as_of` derives the state from the actuals up to an earlier date: the
  forecast as it was made then (the same model version and the same actuals give the same
  numbers).
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Collection
from datetime import UTC, date, datetime, timedelta
from typing import TYPE_CHECKING, Any

import pandas as pd

from features.origin import SeriesOrigin, advance, consecutive_actuals
from serving.forecast_table import SeriesForecast, baseline_features, history_rows
from serving.store import PredictionStore, utc_now

if TYPE_CHECKING:
    from serving.champion import Champion, ChampionManager
    from serving.metrics import ServingMetrics

log = logging.getLogger(__name__)

# Actuals committed by another worker carry its clock: look a little further back than
# the last poll (re-reading a series whose actuals did not change costs nothing).
POLL_OVERLAP = timedelta(seconds=5)
MAX_NAMED_SERIES = 500


def utc_today() -> date:
    return datetime.now(UTC).date()


class LivingForecasts:
    """Keeps the served champion's forecasts at each series' newest origin."""

    def __init__(self, store: PredictionStore, metrics: ServingMetrics | None = None,
                 roll_seconds: float = 2.0, today: Callable[[], date] = utc_today) -> None:
        self.store = store
        self.metrics = metrics
        self.roll_seconds = roll_seconds
        self.today = today
        self._pending: set[str] = set()
        self._lock = threading.Lock()
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def prepare(self, champion: Champion) -> None:
        """Roll a newly loaded champion to the store's actuals (before it serves)."""
        started = utc_now()
        try:
            self.roll(champion, None, record=False)
            self._record(champion, dict(champion.table.series))  # every series, once
        except Exception:  # it serves its training origins; the next poll tries again
            log.exception("could not roll v%s to the stored actuals", champion.ref.version)
            return
        champion.watermark = started
        if self.metrics is not None:
            self.metrics.set_origins(self.status(champion))

    def roll(self, champion: Champion, series_ids: Collection[str] | None,
             record: bool = True) -> int:
        """Re-derive these series (None: all) from the store; returns how many changed
        (``record``: write the changed series' new forecasts to the store)."""
        if not champion.can_roll:
            return 0
        started = time.perf_counter()
        trained = champion.trained_origins
        ids = sorted(trained if series_ids is None else set(series_ids) & set(trained))
        if not ids:
            return 0
        actuals = self._actuals_of(champion, ids, name_them=series_ids is not None)
        origins, rows = self.derive(champion, actuals, ids)
        digests = _digests(origins, rows)
        changed = [s for s in ids if digests[s] != champion.digests.get(s)]
        if not changed:
            return 0
        mine = rows[rows["series_id"].isin(changed)]
        state = champion.state.roll(mine) if len(mine) else champion.state
        entries = champion.forecast_entries(state, {s: origins[s] for s in changed})
        with champion.lock:
            champion.state = state
            champion.table.replace(entries)
            champion.clock = champion.table.clock()
            champion.digests.update({s: digests[s] for s in changed})
        if record:
            self._record(champion, entries)
        self._observe(champion, len(changed), time.perf_counter() - started)
        return len(changed)

    def _actuals_of(self, champion: Champion, ids: list[str], name_them: bool
                    ) -> pd.DataFrame:
        """The stored actuals after these series' training origins; the series are named
        in the query only when few (SQL parameter limits), else filtered by the caller."""
        named = ids if name_them and len(ids) <= MAX_NAMED_SERIES else None
        after = min(champion.trained_origins[s] for s in ids)
        return self.store.read_actuals(series_ids=named, after=after, exog=True)

    def derive(self, champion: Champion, actuals: pd.DataFrame, ids: list[str]
               ) -> tuple[dict[str, SeriesOrigin], pd.DataFrame]:
        """Each series' origin from its actuals, and the actuals its state is built from."""
        trained, freq, today = champion.trained_origins, champion.metadata.freq, self.today()
        actuals = actuals[actuals["series_id"].isin(ids)]
        dates = {str(s): [d.date() for d in g] for s, g in actuals.groupby("series_id")["ds"]}
        origins = {s: advance(s, trained[s], [d for d in dates.get(s, []) if d > trained[s]],
                              freq, today) for s in ids}
        reached = {s: o.origin for s, o in origins.items()}
        posted = actuals.drop(columns=["received_at"], errors="ignore")
        return origins, consecutive_actuals(posted, reached, trained)

    def as_of(self, champion: Champion, series_ids: list[str], when: date
              ) -> tuple[Any, dict[str, SeriesForecast]]:
        """The state and entries of these series as they were made at ``when``: from the
        actuals of periods up to ``when`` (ValueError if ``when`` precedes a training
        origin)."""
        trained = champion.trained_origins
        early = sorted(s for s in series_ids if when < trained[s])
        if early:
            raise ValueError(f"as_of {when} is before the training origin "
                             f"{trained[early[0]]} of {early[0]!r}: this model version made "
                             "no forecast then")
        actuals = self._actuals_of(champion, series_ids, name_them=True)
        actuals = actuals[actuals["ds"] <= pd.Timestamp(when)]
        origins, rows = self.derive(champion, actuals, series_ids)
        state = champion.trained.roll(rows) if champion.can_roll and len(rows) else (
            champion.trained)
        return state, champion.forecast_entries(state, origins)

    def status(self, champion: Champion) -> list[SeriesOrigin]:
        """Every series' origin with its status (stale flagged against the clock)."""
        return [champion.status(entry, champion.clock)
                for _, entry in sorted(champion.table.series.items())]

    def notify(self, series_ids: Collection[str]) -> None:
        """Actuals of these series were accepted here: roll them now (off the request)."""
        with self._lock:
            self._pending.update(series_ids)
        self._wake.set()

    def start(self, manager: ChampionManager) -> None:
        self._thread = threading.Thread(target=self._run, args=(manager,), name="living",
                                        daemon=True)
        self._thread.start()

    def stop(self, timeout: float = 10.0) -> None:
        self._stop.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join(timeout)

    def poll(self, champion: Champion | None) -> int:
        """Roll the series notified here, those whose actuals arrived since the last poll
        (from any worker) and those waiting for a period to end; a champion whose first
        roll failed is rolled whole."""
        if champion is None or not champion.can_roll:
            return 0
        with self._lock:
            pending, self._pending = self._pending, set()
        pending |= {s for s, entry in champion.table.series.items()
                    if entry.origin.status == "incomplete"}
        started, since = utc_now(), champion.watermark
        if since is None:
            rolled = self.roll(champion, None)
        else:
            recent = self.store.read_actuals(since=since - POLL_OVERLAP)
            rolled = self.roll(champion, pending | set(recent["series_id"]))
        champion.watermark = started
        return rolled

    def _run(self, manager: ChampionManager) -> None:
        while not self._stop.is_set():
            self._wake.wait(self.roll_seconds)
            self._wake.clear()
            if self._stop.is_set():
                return
            try:
                self.poll(manager.current)
            except Exception:  # the API keeps serving the last good forecasts
                log.exception("rolling the forecasts forward failed; retrying")

    def _record(self, champion: Champion, entries: dict[str, SeriesForecast]) -> None:
        ref = champion.ref
        try:
            self.store.save_forecasts(ref.name, ref.version, history_rows(entries))
            self.store.save_baseline_features(ref.name, ref.version, baseline_features(entries))
        except Exception:  # the forecasts still flow; history and drift features lack them
            log.exception("could not record the forecasts of %d series", len(entries))

    def _observe(self, champion: Champion, rolled: int, seconds: float) -> None:
        log.info("rolled %d series forward in %.2f s (newest origin %s)", rolled, seconds,
                 champion.clock)
        if self.metrics is not None:
            self.metrics.observe_roll(rolled, seconds)
            self.metrics.set_origins(self.status(champion))


def _digests(origins: dict[str, SeriesOrigin], rows: pd.DataFrame) -> dict[str, Any]:
    """What each series' entry is computed from: its origin (with status) and actuals;
    :class:`serving.champion.Champion` starts with the same shape at its training origins."""
    values = [c for c in rows.columns if c != "series_id"]  # ds, y and posted exog
    # (column, value) of the known cells only: the exog columns a read returns depend on
    # which series it covered, and a series' digest must not (NaN != NaN: unknown)
    used = {str(s): tuple(tuple((c, v) for c, v in zip(values, row, strict=True)
                                if v is not None and v == v)
                          for row in g[values].itertuples(index=False))
            for s, g in rows.groupby("series_id")}
    return {s: (o, used.get(s, ())) for s, o in origins.items()}
