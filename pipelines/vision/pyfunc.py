"""The MLflow pyfunc flavour of a seqcast image classifier, logged as models-from-code (no pickled objects)."""

from __future__ import annotations

import numpy as np
import pandas as pd
from mlflow.pyfunc import PythonModel

CLASSIFIER_ARTIFACT = "classifier"


class SeqcastClassifierModel(PythonModel):
    """``predict(images)`` for a seqcast CNN classifier.

    ``images``: an array ``[N, H, W]`` / ``[N, H, W, C]`` (or one ``[H, W]`` image) in the training data's
    units (0..16 for ``digits``, 0..255 for 8-bit data), or a list of PNG/JPEG ``bytes``. Returns a DataFrame,
    one row per image: ``label`` (the most probable class), ``probability`` (its probability) and one column of
    probabilities per class, named by the class label.
    """

    def load_context(self, context):
        from pipelines.vision.classifier import Classifier

        self.classifier = Classifier.load(context.artifacts[CLASSIFIER_ARTIFACT])

    def predict(self, context, model_input: pd.DataFrame, params: dict | None = None):
        # MLflow serving hands a DataFrame; in process, arrays and lists work too (the hint only tells MLflow
        # not to infer a schema: the signature is given when the model is logged)
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
