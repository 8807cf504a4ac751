"""The MLflow pyfunc flavour of a seqcast forecaster, logged as models-from-code (no pickled Python objects).

``mlflow.pyfunc.load_model("models:/NAME@champion").predict(history, params={"horizon": 12})``
returns the forecast of one history (a list, 1-D array, Series or one-column frame: the signature's one
column of doubles), as a 1-D array. A panel model (:class:`SeqcastPanelModel`) takes many series as rows.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from mlflow.pyfunc import PythonModel

from pipelines.tracking.tags import FORECASTER, PANEL_FORECASTER

FORECASTER_ARTIFACT = FORECASTER  # the folder a forecaster's bundle is logged under (its kind's name)


class SeqcastForecastModel(PythonModel):
    def load_context(self, context):
        from pipelines.forecasting.forecaster import Forecaster

        self.forecaster = Forecaster.load(context.artifacts[FORECASTER_ARTIFACT])

    def predict(self, context, model_input: pd.DataFrame, params: dict | None = None):
        # MLflow serving hands a DataFrame; in process, arrays and lists work too (the hint only tells MLflow
        # not to infer a schema: the signature is given when the model is logged)
        horizon = int((params or {}).get("horizon") or self.forecaster.usual_horizon())
        if isinstance(model_input, pd.DataFrame):
            model_input = model_input.to_numpy()
            if model_input.shape[1] == 1:
                model_input = model_input[:, 0]
        values = np.asarray(model_input, dtype=np.float64)
        if values.ndim == 1:
            return self.forecaster.forecast(values, horizon)
        return self.forecaster.forecast_batch(list(values), horizon)


PANEL_ARTIFACT = PANEL_FORECASTER


class SeqcastPanelModel(PythonModel):
    """A panel model: ``predict(frame)`` with a ``series`` and a ``value`` column (each series' history, oldest
    first) returns a frame ``series, step, forecast``: each series forecast by its winner; a series the panel
    never saw by the network."""

    def load_context(self, context):
        from pipelines.forecasting.panel import PanelForecaster

        self.forecaster = PanelForecaster.load(context.artifacts[PANEL_ARTIFACT])

    def predict(self, context, model_input: pd.DataFrame, params: dict | None = None):
        horizon = int((params or {}).get("horizon") or self.forecaster.usual_horizon())
        names = list(dict.fromkeys(model_input["series"]))
        groups = model_input.groupby("series", sort=False)["value"]
        windows = [self.forecaster.check_history(groups.get_group(n).to_numpy(), n) for n in names]
        lookback = self.forecaster.lookback
        forecasts = self.forecaster.forecast_windows(np.stack([w[-lookback:] for w in windows]), horizon, names)
        return pd.DataFrame(
            {
                "series": np.repeat(names, horizon),
                "step": np.tile(np.arange(1, horizon + 1), len(names)),
                "forecast": forecasts.ravel(),
            }
        )
