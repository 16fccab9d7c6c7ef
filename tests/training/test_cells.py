"""The few-cell fast path (training.forecasters.cells) answers exactly like the general path.

The served model takes it for small requests of a family with a matrix predictor
(LightGBM); the general path (pandas frames through the pipeline) is the reference.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from tests.training._panels import PanelShape, make_training_set
from training.conformal import ConformalCalibration
from training.forecasters import LightGBMForecaster
from training.forecasters.common import recent_level
from training.pyfunc import SalescastModel

H = 4
SHAPE = PanelShape(n_series=4, seed=5, periods=110, promo_rate=0.3, promo_lift=0.8)


@pytest.fixture(scope="module", params=["row", "both"])
def model(request: pytest.FixtureRequest) -> SalescastModel:
    """A LightGBM model with one scale, and a hedged pair (``target_scale="both"``)."""
    training_set = make_training_set(SHAPE, horizon=H)
    forecaster = LightGBMForecaster(n_estimators=60, num_leaves=7,
                                    target_scale=request.param).fit(training_set)
    rng = np.random.default_rng(0)
    scores = {h: np.abs(rng.normal(0, 0.1 * h, 200)) for h in range(1, H + 1)}
    forecaster.set_conformal(ConformalCalibration(scores, recent_level(training_set.base, 52)))
    metadata = {"horizon": H, "freq": "W", "level": 0.8, "series_ids": training_set.series_ids,
                "exog_columns": list(training_set.exog_columns),
                "feature_columns": list(training_set.feature_columns)}
    return SalescastModel(forecaster, metadata)


def _requests(model: SalescastModel) -> list[pd.DataFrame]:
    origins = model.forecaster.origins()
    one, two = sorted(origins.index)[:2]
    ahead = [origins[one] + pd.Timedelta(weeks=k) for k in range(1, H + 1)]
    plain = pd.DataFrame({"series_id": one, "ds": ahead})
    promo = plain.assign(promo=[np.nan, 1.0, np.nan, 0.0], price=[np.nan, 3.5, 9.0, np.nan])
    mixed = pd.DataFrame({"series_id": [two, one, two], "ds": [ahead[3], ahead[0], ahead[1]],
                          "price": [1.0, np.nan, 50.0]})
    return [plain, promo, mixed]


@pytest.mark.parametrize("case", range(3))
@pytest.mark.parametrize("level", [None, 0.5])
def test_the_cell_path_equals_the_general_path(model: SalescastModel, case: int,
                                               level: float | None) -> None:
    rows = _requests(model)[case]
    params = None if level is None else {"level": level}
    fast = model._forecast_cells(rows, params)
    assert fast is not None
    general = model._forecast(rows, params)[0]
    pd.testing.assert_frame_equal(fast[0], general, check_dtype=False, rtol=1e-12)


@pytest.mark.parametrize("case", range(3))
def test_the_cell_path_reports_the_features_the_general_path_builds(
    model: SalescastModel, case: int
) -> None:
    rows = _requests(model)[case]
    fast_features = model._forecast_cells(rows, None)[1]
    _, checked, used, _ = model._forecast(rows, None)
    general = used.set_index(["series_id", "ds"])
    for record, (series_id, ds) in zip(fast_features, zip(checked["series_id"], checked["ds"],
                                                         strict=True), strict=True):
        expected = general.loc[(series_id, ds)]
        for name, value in record.items():
            if isinstance(value, str):
                assert value == expected[name], name
            else:
                assert value == pytest.approx(float(expected[name]), rel=1e-12, nan_ok=True), name


def test_a_promotion_moves_its_cell_only_and_a_repeated_cell_takes_the_general_path(
    model: SalescastModel,
) -> None:
    plain, promo, _ = _requests(model)
    before = model.predict(None, plain)["yhat"].to_numpy()
    after = model.predict(None, promo)["yhat"].to_numpy()
    changed = (before != after).tolist()
    assert changed[1] and not changed[0] and not changed[3]  # promo 0 is the plan here
    assert model._forecast_cells(pd.concat([plain, plain]), None) is None


@pytest.mark.parametrize("level", ["x", 2, 0, -0.5])
def test_a_level_that_is_not_a_share_is_refused(model: SalescastModel, level: object) -> None:
    with pytest.raises(ValueError, match="level must be"):
        model.predict(None, _requests(model)[0], {"level": level})
