"""Request and response models of /v1/overrides (the OpenAPI docs at /docs).

Kept apart from :mod:`serving.schemas` (forecast, actuals, model) as their own resource
family. Requests refuse unknown fields; every number is finite and within +-1e15; text
fields refuse control characters (a note may have line breaks).
"""

from __future__ import annotations

from datetime import date, datetime
from typing import Annotated

from pydantic import BaseModel, Field, model_validator

from serving.overrides import Override, Reason
from serving.schemas import RequestModel, SalesValue, SeriesId

MAX_PERIODS = 520  # ten years of weeks: more periods in one override is a mistake
AUTHOR_PATTERN = r"^[^\x00-\x1f\x7f]*[^\s\x00-\x1f\x7f][^\x00-\x1f\x7f]*$"  # not blank
Author = Annotated[str, Field(min_length=1, max_length=255, pattern=AUTHOR_PATTERN,
                              description="Who decided (name or login); no control "
                              "characters.", examples=["maria.lopez"])]
Note = Annotated[str, Field(max_length=2000, pattern=r"^[^\x00-\x09\x0b-\x1f\x7f]*$",
                            description="Free text; line breaks allowed, no other control "
                            "characters.", examples=["ACME confirmed 400 extra units"])]
PctChange = Annotated[float, Field(strict=True, allow_inf_nan=False, ge=-100, le=10_000,
                                   description="Percent change of the model's number: 20 = "
                                   "+20 %, -100 = zero.", examples=[20.0])]


class OverrideRequest(RequestModel):
    """One override: a series (by id or keys), its periods, the change, who and why.

    Periods: ``ds`` (a list of period starts) or ``ds_from`` and ``ds_to`` (every period
    from the first to the last, both included). Change: exactly one of ``value`` (the
    new number) or ``pct_change`` (percent of the model's number).
    """

    series_id: SeriesId | None = None
    keys: dict[str, str] | None = Field(None, examples=[{"store": "S01", "category": "C1"}])
    ds: list[date] | None = Field(None, min_length=1, max_length=MAX_PERIODS,
                                  examples=[["2024-06-10", "2024-06-17"]])
    ds_from: date | None = Field(None, examples=["2024-06-10"])
    ds_to: date | None = Field(None, examples=["2024-07-01"])
    value: SalesValue | None = Field(None, examples=[1800.0])
    pct_change: PctChange | None = None
    author: Author
    reason: Reason = Field(description="promotion, customer_order, supply or other.")
    note: Note | None = None

    @model_validator(mode="after")
    def _one_of_each(self) -> OverrideRequest:
        if (self.series_id is None) == (self.keys is None):
            raise ValueError("give exactly one of 'series_id' or 'keys'")
        if (self.value is None) == (self.pct_change is None):
            raise ValueError("give exactly one of 'value' or 'pct_change'")
        ranged = self.ds_from is not None or self.ds_to is not None
        if (self.ds is None) == (not ranged) or (ranged and None in (self.ds_from, self.ds_to)):
            raise ValueError("give the periods as 'ds' (a list) or as 'ds_from' and 'ds_to'")
        if ranged and self.ds_to < self.ds_from:  # type: ignore[operator]
            raise ValueError("'ds_to' is before 'ds_from'")
        return self


class OverrideOut(BaseModel):
    """A stored override; ``active`` false once revoked (the row is kept)."""

    id: int = Field(examples=[7])
    series_id: str = Field(examples=["S01|C1"])
    periods: list[date] = Field(examples=[["2024-06-10", "2024-06-17"]])
    value: float | None = None
    pct_change: float | None = Field(None, examples=[20.0])
    author: str = Field(examples=["maria.lopez"])
    reason: str = Field(examples=["customer_order"])
    note: str | None = None
    created_at: datetime
    active: bool
    revoked_at: datetime | None = None
    revoked_by: str | None = None

    @classmethod
    def of(cls, override: Override) -> OverrideOut:
        fields = vars(override) | {"periods": list(override.periods), "active": override.active}
        return cls(**fields)


class OverrideList(BaseModel):
    overrides: list[OverrideOut] = Field(description="Newest first.")
