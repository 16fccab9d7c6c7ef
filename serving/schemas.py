"""Request and response models of the prediction API (they are the OpenAPI docs at /docs).

One family per resource: forecast, actuals, model, health, errors. Requests refuse
unknown fields, so a misspelt field is a 422 naming it instead of being ignored.
"""

from __future__ import annotations

from datetime import date, datetime
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, FiniteFloat, model_validator

from serving.store import MAX_ABS_VALUE

SalesValue = Annotated[float, Field(strict=True, allow_inf_nan=False, ge=-MAX_ABS_VALUE,
                                    le=MAX_ABS_VALUE,
                                    description="A number (not a string or a boolean), "
                                    "finite, |value| <= 1e15.")]
SeriesId = Annotated[str, Field(min_length=1, max_length=255, pattern=r"^[^\x00-\x1f\x7f]+$",
                                description="No control characters.", examples=["S01|grocery"])]

FORECAST_EXAMPLES = [
    {"series": [{"series_id": "S01|grocery"}], "horizon": 8},
    {"series": [{"keys": {"store": "S01", "category": "grocery"}}, {"series_id": "S02|garden"}]},
    {"rows": [{"series_id": "S01|grocery", "ds": "2025-01-06"}, {"series_id": "S01|grocery",
                                                            "ds": "2025-01-13"}]},
    {
        "series": [{"series_id": "S01|grocery"}],
        "horizon": 4,
        "scenario": [
            {"values": {"price": 9.5}},
            {"series_id": "S01|grocery", "ds": "2025-01-13", "values": {"promo": 1}},
        ],
    },
]


class RequestModel(BaseModel):
    model_config = ConfigDict(extra="forbid")


class SeriesRef(RequestModel):
    """A series, by its id or by its key values (e.g. store and category)."""

    series_id: str | None = Field(None, min_length=1, examples=["S01|grocery"])
    keys: dict[str, str] | None = Field(None, examples=[{"store": "S01", "category": "grocery"}])

    @model_validator(mode="after")
    def _one_way(self) -> SeriesRef:
        if (self.series_id is None) == (self.keys is None):
            raise ValueError("give exactly one of 'series_id' or 'keys'")
        return self


class ForecastRow(RequestModel):
    """One (series, period) to forecast; ``ds`` must be one of the model's horizon dates."""

    series_id: str = Field(min_length=1, examples=["S01|grocery"])
    ds: date = Field(examples=["2025-01-06"])


class ScenarioValues(RequestModel):
    """What-if values of future exogenous features, by name: promo 0/1, price, holiday,
    and any known-future column of the model's spec (a store's ``open`` flag, a
    ``markdown``); ``GET /v1/model`` lists them (``exog_columns``), and another name is a
    422 that lists them.

    Applies to every requested row, or only to one series and/or one ``ds``; later
    entries override earlier ones. Rows without scenario values use the model's plan
    (the planned calendar and known-future table, else the last known value).
    """

    series_id: str | None = Field(None, min_length=1)
    keys: dict[str, str] | None = None
    ds: date | None = None
    values: dict[str, FiniteFloat] = Field(
        min_length=1, description="Exogenous column name -> value (see GET /v1/model).",
        examples=[{"promo": 1, "price": 9.5}, {"open": 0}])

    @model_validator(mode="after")
    def _one_series_way(self) -> ScenarioValues:
        if self.series_id is not None and self.keys is not None:
            raise ValueError("give at most one of 'series_id' or 'keys'")
        return self


class ForecastRequest(RequestModel):
    """Series and a horizon, explicit rows, or a key level; optionally a scenario."""

    model_config = ConfigDict(extra="forbid", json_schema_extra={
        "examples": FORECAST_EXAMPLES,
        "oneOf": [{"required": ["series"]}, {"required": ["rows"]},
                  {"required": ["level"]}],  # exactly one
    })

    series: list[SeriesRef] | None = Field(None, min_length=1)
    horizon: int | None = Field(
        None, ge=1, description="Periods ahead of each series' origin; default: the model's.")
    rows: list[ForecastRow] | None = Field(None, min_length=1)
    level: dict[str, str] | None = Field(
        None, description="A key level: the roll-up (sum) of every series under it, e.g. "
        '{"store": "S01"}; {} is the total (serving.hierarchy).',
        examples=[{"store": "S01"}, {}])
    scenario: list[ScenarioValues] = Field(default_factory=list)
    as_of: date | None = Field(
        None, description="Answer as the forecast was made at this earlier date: from each "
        "series' newest complete period then (an audit of what an application saw).",
        examples=["2024-09-02"])
    explain: bool = Field(
        False, description="Also return each row's drivers (why the number is what it is: "
        "features, components or members, see serving.explain); at most 1,000 rows.")
    explain_top: int = Field(5, ge=1, le=50, description="Drivers listed per row with "
                             "explain; the rest are summed as 'other'.")

    @model_validator(mode="after")
    def _series_or_rows(self) -> ForecastRequest:
        given = [self.series is not None, self.rows is not None, self.level is not None]
        if sum(given) != 1:
            raise ValueError("give exactly one of 'series' (with an optional horizon), 'rows' "
                             "or 'level' (with an optional horizon)")
        if self.rows is not None and self.horizon is not None:
            raise ValueError("'horizon' goes with 'series'; 'rows' name their periods")
        if self.level is not None and self.scenario:
            raise ValueError("'scenario' is not available with 'level': ask the series")
        if self.level is not None and self.explain:
            raise ValueError("'explain' goes with 'series' or 'rows', not 'level'")
        return self


class ModelRefOut(BaseModel):
    """The model version that produced an answer."""

    name: str = Field(examples=["retail_demo_forecaster"])
    version: str = Field(examples=["3"])
    run_id: str | None = Field(None, examples=["2f3f437237ad41058c9eb3f692bc0e12"])


class DriverOut(BaseModel):
    """One reason for a forecast: a feature, a component, a member or the period read."""

    name: str = Field(examples=["promo"])
    value: float | str | None = Field(
        description="What the model read: a feature's value, a key, a date; null for a "
        "component (level, trend, season) or 'other'.", examples=[1.0])
    contribution: float | None = Field(description="Its share of the forecast, in units "
                                       "of y.", examples=[412.3])


class ForecastPoint(BaseModel):
    series_id: str = Field(examples=["S01|grocery"])
    ds: date = Field(examples=["2025-01-06"])
    origin: date | None = Field(
        description="The period the forecast was made from: the series' newest complete "
        "actual (or the end of the training data).", examples=["2024-12-30"])
    yhat: float | None = Field(description="Point forecast: the final number (a person's "
                               "override when one applies, else the model's).",
                               examples=[1520.4])
    yhat_lower: float | None = Field(description="Lower bound of the interval.")
    yhat_upper: float | None = Field(description="Upper bound of the interval.")
    yhat_model: float | None = Field(description="The model's point forecast (= yhat "
                                     "without an override).", examples=[1520.4])
    override_id: int | None = Field(description="The override applied (GET /v1/overrides), "
                                     "or null.", examples=[None])
    drivers: list[DriverOut] | None = Field(
        None, description="With explain: the largest contributions to yhat_model, largest "
        "|contribution| first, the rest summed as 'other'; null for a cold-start series.")
    base: float | None = Field(None, description="With explain: what the drivers add to; "
                               "base + sum(contribution) = yhat_model.")
    family: str | None = Field(None, description="With explain: the model family.")
    method: str | None = Field(None, description="With explain: how the drivers were "
                               "computed, and in what units.")


class ErrorItem(BaseModel):
    """A problem with part of a request (the rest was answered)."""

    code: str = Field(examples=["unknown_series"])
    message: str
    field: str | None = Field(None, examples=["series[1]"])
    series_id: str | None = None


class SeriesOriginOut(BaseModel):
    """Where a series' forecast starts, and why there."""

    series_id: str = Field(examples=["S01|grocery"])
    origin: date = Field(description="The newest complete period the forecast is made from.")
    status: Literal["current", "incomplete", "gap", "stale"] = Field(
        description="current: the newest actual is the origin; incomplete: the newest "
        "period is not over yet; gap: a period's actual is missing; stale: the origin is "
        "more than the horizon behind the newest origin of any series.")
    detail: str | None = Field(None, description="Why, in words, when not current.")
    cold_start: bool | None = Field(
        None, description="True for a series the model has not seen: its forecast is the "
        "mean of its siblings' (serving.cold_start), named in ``detail``.")


class ForecastResponse(BaseModel):
    request_id: str = Field(examples=["5b0e3d0c8f9a4c1e9d2b7a6f4e3c2b1a"])
    model: ModelRefOut
    forecasts: list[ForecastPoint]
    origins: list[SeriesOriginOut] = Field(description="One per answered series.")
    errors: list[ErrorItem] = Field(default_factory=list)


class LevelPointOut(BaseModel):
    """One period of a roll-up: the sum of its series' forecasts, the interval of the sum."""

    ds: date = Field(examples=["2025-01-06"])
    yhat: float | None = Field(description="Sum of the series' point forecasts.")
    yhat_lower: float | None = Field(description="Lower bound of the sum's interval.")
    yhat_upper: float | None = Field(description="Upper bound of the sum's interval.")
    correlation: float = Field(description="Effective error correlation used (0..1).")


class LevelIntervalOut(BaseModel):
    method: str = Field(description="How the sum's interval was computed.")
    nominal_level: float | None
    correlation: float | None = Field(description="Mean effective correlation over periods.")


class LevelForecastResponse(BaseModel):
    """The answer to a ``level`` request (serving.hierarchy)."""

    request_id: str
    model: ModelRefOut
    level: dict[str, str] = Field(examples=[{"store": "S01"}])
    n_series: int = Field(description="Series summed.")
    series_ids: list[str]
    interval: LevelIntervalOut
    forecasts: list[LevelPointOut]
    origins: list[SeriesOriginOut] = Field(description="One per series summed.")
    errors: list[ErrorItem] = Field(default_factory=list)


class SeriesOriginState(SeriesOriginOut):
    trained: date = Field(description="The last period the model was trained on.")
    newest_actual: date | None = Field(description="The newest period with an actual.")


class OriginsResponse(BaseModel):
    """Every series' origin (GET /v1/origins)."""

    model: ModelRefOut
    newest_origin: date | None
    counts: dict[str, int] = Field(description="Series per status.")
    series: list[SeriesOriginState]


class ActualIn(RequestModel):
    """Realised sales of one series in one period."""

    series_id: SeriesId
    ds: date = Field(examples=["2025-01-06"])
    y: SalesValue = Field(examples=[1480.0])
    values: dict[str, SalesValue] | None = Field(
        None, description="What the period's exogenous inputs really were (e.g. promo, "
        "price): the rolled forecast uses them instead of the plan.",
        examples=[{"promo": 1, "price": 9.5}])


class ActualsRequest(RequestModel):
    actuals: list[ActualIn] = Field(
        min_length=1, examples=[[{"series_id": "S01|grocery", "ds": "2025-01-06", "y": 1480.0}]]
    )


class ActualsResponse(BaseModel):
    received: int = Field(description="Rows in the request.")
    stored: int = Field(description="Distinct (series_id, ds) inserted or replaced.")


class ModelInfo(BaseModel):
    """The champion being served and what it can forecast."""

    name: str
    version: str
    run_id: str | None
    alias: str
    source: str = Field(description="'registry', or 'local-copy' when MLflow was unreachable.")
    loaded_at: datetime
    family: str
    freq: str
    horizon: int
    last_ds: date = Field(description="Training origin: the last period the model was "
                          "trained on (each series then moves on with its actuals).")
    newest_origin: date | None = Field(description="The newest origin of any series.")
    level: float | None
    keys: list[str]
    exog_columns: list[str] = Field(description="Scenario values this model accepts.")
    series_ids: list[str]


class ReloadResponse(BaseModel):
    swapped: bool = Field(description="False when the alias still names the served version.")
    previous: ModelRefOut | None
    current: ModelRefOut


class HealthStatus(BaseModel):
    status: str = Field(examples=["ok"])


class ReadyStatus(BaseModel):
    status: str = Field(examples=["ready"])
    model: ModelRefOut | None = None
    detail: str | None = None


class InvocationsResponse(BaseModel):
    """MLflow scoring-server answer: one record per input row."""

    predictions: list[dict[str, Any]] = Field(
        examples=[[{"series_id": "S01|grocery", "ds": "2025-01-06T00:00:00", "yhat": 1520.4,
                    "yhat_lower": 1380.0, "yhat_upper": 1660.9}]]
    )


class ErrorBody(BaseModel):
    code: str = Field(examples=["validation_error"])
    message: str = Field(examples=["rows[3].ds: Input should be a valid date"])
    field: str | None = Field(None, examples=["rows[3].ds"])
    details: list[dict[str, Any]] | None = None


class ErrorResponse(BaseModel):
    """Every error: ``{"error": {"code", "message", "field"?}}``."""

    error: ErrorBody


def error_responses(*statuses: int) -> dict[int | str, dict[str, Any]]:
    """OpenAPI ``responses=`` entries documenting the JSON error shape."""
    return {status: {"model": ErrorResponse} for status in statuses}


def json_error_responses(*statuses: int) -> dict[int | str, dict[str, Any]]:
    """The same for a route whose success is not JSON (HTML, text): FastAPI would document
    its errors under the route's own media type, but they are sent as JSON."""
    schema = {"$ref": "#/components/schemas/ErrorResponse"}
    return {status: {"description": "Error", "content": {"application/json": {"schema": schema}}}
            for status in statuses}
