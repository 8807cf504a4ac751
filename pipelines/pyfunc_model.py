"""The MLflow pyfunc flavour of a seqcast model, logged as models-from-code (no pickled Python objects).

``mlflow.pyfunc.load_model("models:/NAME@champion").predict(history, params={"horizon": 12})``
returns the forecast: a 1-D array for one history (list, 1-D array, Series or one-column frame),
a 2-D array for a 2-D batch of equally long histories.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from mlflow.pyfunc import PythonModel

FORECASTER_ARTIFACT = "forecaster"


class SeqcastForecastModel(PythonModel):
    def load_context(self, context):
        from pipelines.forecaster import Forecaster

        self.forecaster = Forecaster.load(context.artifacts[FORECASTER_ARTIFACT])
        self.default_horizon = int(self.forecaster.meta.get("horizon", 1))

    def predict(self, context, model_input, params=None):
        horizon = int((params or {}).get("horizon") or self.default_horizon)
        if isinstance(model_input, pd.DataFrame):
            model_input = model_input.to_numpy()
            if model_input.shape[1] == 1:
                model_input = model_input[:, 0]
        values = np.asarray(model_input, dtype=np.float64)
        if values.ndim == 1:
            return self.forecaster.forecast(values, horizon)
        return self.forecaster.forecast_batch(list(values), horizon)


CLASSIFIER_ARTIFACT = "classifier"


class SeqcastClassifierModel(PythonModel):
    """``predict(images)`` for a seqcast CNN classifier.

    ``images``: an array ``[N, H, W]`` / ``[N, H, W, C]`` (or one ``[H, W]`` image) in the training data's
    units (0..16 for ``digits``, 0..255 for 8-bit data), or a list of PNG/JPEG ``bytes``. Returns a DataFrame,
    one row per image: ``label`` (the most probable class), ``probability`` (its probability) and one column of
    probabilities per class, named by the class label.
    """

    def load_context(self, context):
        from pipelines.classifier import Classifier

        self.classifier = Classifier.load(context.artifacts[CLASSIFIER_ARTIFACT])

    def predict(self, context, model_input, params=None):
        classifier = self.classifier
        if isinstance(model_input, pd.DataFrame):
            model_input = model_input.to_numpy()
        if isinstance(model_input, (list, tuple)) and model_input and isinstance(model_input[0], (bytes, bytearray)):
            batch = classifier.prepare_files(model_input)
        else:
            batch = classifier.prepare_arrays(model_input)
        probabilities = classifier.predict_proba(batch)
        best = probabilities.argmax(axis=1)
        frame = pd.DataFrame(probabilities, columns=list(classifier.labels))
        frame.insert(0, "probability", probabilities[np.arange(len(best)), best])
        frame.insert(0, "label", [classifier.labels[i] for i in best])
        return frame
