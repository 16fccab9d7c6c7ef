"""The champion's metadata contract, and the per-series entries of its precomputed forecast."""

from __future__ import annotations

from datetime import date

import pandas as pd
import pytest

from features.origin import SeriesOrigin
from serving.champion import ChampionMetadata
from serving.forecast_table import ForecastTable, build_entries, grid


def _metadata(**extra: object) -> ChampionMetadata:
    base = {"family": "toy", "horizon": 2, "freq": "W", "last_ds": "2024-06-03",
            "series_ids": ["A"], "keys": ["store"]}
    return ChampionMetadata.model_validate(base | extra)


def _origin(series_id: str, origin: str, trained: str = "2024-06-03") -> SeriesOrigin:
    return SeriesOrigin(series_id, date.fromisoformat(trained), date.fromisoformat(origin),
                        None, "current")


def test_a_model_breaking_the_metadata_contract_is_refused() -> None:
    assert _metadata().last_ds == date(2024, 6, 3)
    with pytest.raises(ValueError, match="freq"):
        _metadata(freq="Q")
    with pytest.raises(ValueError, match="series_ids"):
        _metadata(series_ids=[])


def test_the_grid_holds_each_series_horizon_after_its_own_origin() -> None:
    origins = {"A": _origin("A", "2024-06-03"), "B": _origin("B", "2024-06-17")}
    rows = grid(origins, "W", 2)
    assert rows.assign(ds=rows["ds"].dt.strftime("%Y-%m-%d")).values.tolist() == [
        ["A", "2024-06-10"], ["A", "2024-06-17"], ["B", "2024-06-24"], ["B", "2024-07-01"]]


def test_entries_index_rows_by_series_and_step_whatever_the_output_order() -> None:
    origins = {"A": _origin("A", "2024-06-03"), "B": _origin("B", "2024-06-10")}
    forecast = pd.DataFrame({
        "series_id": ["B", "A", "A", "B"],
        "ds": pd.to_datetime(["2024-06-24", "2024-06-17", "2024-06-10", "2024-06-17"]),
        "yhat": [4.0, 2.0, 1.0, 3.0], "yhat_lower": [3.0, 1.0, 0.0, 2.0],
        "yhat_upper": [5.0, 3.0, 2.0, float("nan")],
    })
    entries = build_entries(forecast, None, origins, "W", 2)
    assert [p.yhat for p in entries["A"].points] == [1.0, 2.0]
    assert [p.yhat for p in entries["B"].points] == [3.0, 4.0]
    assert entries["B"].step_of_date == {date(2024, 6, 17): 0, date(2024, 6, 24): 1}
    assert entries["B"].points[0].point_json == (
        '{"series_id":"B","ds":"2024-06-17","origin":"2024-06-10","yhat":3.0,'
        '"yhat_lower":2.0,"yhat_upper":null,"yhat_model":3.0,"override_id":null}'
    )
    assert entries["B"].points[0].mlflow_json.endswith('"origin": "2024-06-10"}')
    assert '"yhat_upper": NaN' in entries["B"].points[0].mlflow_json  # as MLflow writes
    assert entries["B"].points[0].log_row[-1] == "2024-06-10"


def test_entries_with_holes_or_other_dates_are_refused() -> None:
    origins = {"A": _origin("A", "2024-06-03")}
    forecast = pd.DataFrame({"series_id": ["A"], "ds": pd.to_datetime(["2024-06-10"]),
                             "yhat": [1.0], "yhat_lower": [0.0], "yhat_upper": [2.0]})
    with pytest.raises(ValueError, match="not the periods"):
        build_entries(forecast, None, origins, "W", 2)
    shifted = forecast.assign(ds=pd.to_datetime(["2024-06-11"]))
    with pytest.raises(ValueError, match="not the periods"):
        build_entries(shifted, None, origins, "W", 1)


def test_replacing_an_entry_moves_that_series_and_the_clock_only() -> None:
    origins = {"A": _origin("A", "2024-06-03"), "B": _origin("B", "2024-06-03")}
    forecast = grid(origins, "W", 1).assign(yhat=1.0, yhat_lower=0.0, yhat_upper=2.0)
    table = ForecastTable(build_entries(forecast, None, origins, "W", 1))
    before = table.take(["A", "B"])
    moved = {"B": _origin("B", "2024-06-10")}
    later = grid(moved, "W", 1).assign(yhat=5.0, yhat_lower=4.0, yhat_upper=6.0)
    table.replace(build_entries(later, None, moved, "W", 1))
    assert table.series["A"] is before["A"]
    assert table.series["B"].dates == ("2024-06-17",)
    assert before["B"].dates == ("2024-06-10",)  # what a request already took stays whole
    assert table.clock() == date(2024, 6, 10)
