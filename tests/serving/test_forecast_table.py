"""The forecastable dates of a champion, and its precomputed forecast table."""

from __future__ import annotations

from datetime import date

import pandas as pd
import pytest

from serving.champion import ChampionMetadata
from serving.forecast_table import build_forecast_table, horizon_dates


@pytest.mark.parametrize(
    ("last_ds", "freq", "expected"),
    [
        ("2024-06-03", "W", ["2024-06-10", "2024-06-17", "2024-06-24"]),
        ("2024-02-27", "D", ["2024-02-28", "2024-02-29", "2024-03-01"]),
        ("2024-01-31", "M", ["2024-02-29", "2024-03-31", "2024-04-30"]),
        ("2024-01-01", "M", ["2024-02-01", "2024-03-01", "2024-04-01"]),
    ],
)
def test_horizon_dates_follow_the_frequency(last_ds: str, freq: str, expected: list[str]) -> None:
    dates = horizon_dates(date.fromisoformat(last_ds), freq, 3)
    assert [d.strftime("%Y-%m-%d") for d in dates] == expected


def _metadata(**extra: object) -> ChampionMetadata:
    base = {"family": "toy", "horizon": 2, "freq": "W", "last_ds": "2024-06-02",
            "series_ids": ["A"], "keys": ["store"]}
    return ChampionMetadata.model_validate(base | extra)


def test_the_models_own_list_of_dates_wins_over_derived_ones() -> None:
    assert _metadata().horizon_dates() == ("2024-06-09", "2024-06-16")
    listed = _metadata(forecast_ds=["2024-06-10", "2024-06-03"])  # e.g. weeks ending Monday
    assert listed.horizon_dates() == ("2024-06-03", "2024-06-10")


def test_a_model_breaking_the_metadata_contract_is_refused() -> None:
    with pytest.raises(ValueError, match="freq"):
        _metadata(freq="Q")
    with pytest.raises(ValueError, match="series_ids"):
        _metadata(series_ids=[])


def test_table_indexes_rows_by_series_and_step_whatever_the_output_order() -> None:
    forecast = pd.DataFrame({
        "series_id": ["B", "A", "A", "B"],
        "ds": pd.to_datetime(["2024-06-16", "2024-06-16", "2024-06-09", "2024-06-09"]),
        "yhat": [4.0, 2.0, 1.0, 3.0], "yhat_lower": [3.0, 1.0, 0.0, 2.0],
        "yhat_upper": [5.0, 3.0, 2.0, float("nan")],
    })
    table = build_forecast_table(forecast, None, ("2024-06-09", "2024-06-16"))
    assert [p.yhat for p in table.points["A"]] == [1.0, 2.0]
    assert [p.yhat for p in table.points["B"]] == [3.0, 4.0]
    assert table.points["B"][0].point_json == (
        '{"series_id":"B","ds":"2024-06-09","yhat":3.0,"yhat_lower":2.0,"yhat_upper":null}'
    )
    assert table.points["B"][0].mlflow_json.endswith('"yhat_upper": NaN}')  # as MLflow writes


def test_a_table_with_holes_is_refused() -> None:
    forecast = pd.DataFrame({"series_id": ["A"], "ds": pd.to_datetime(["2024-06-09"]),
                             "yhat": [1.0], "yhat_lower": [0.0], "yhat_upper": [2.0]})
    with pytest.raises(ValueError, match="did not forecast"):
        build_forecast_table(forecast, None, ("2024-06-09", "2024-06-16"))
