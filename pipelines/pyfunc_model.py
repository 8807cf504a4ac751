"""Where the pyfunc classes lived before ``pipelines/`` had sub-packages.

Every model version registered before the move carries an entry script that imports from here
(``from pipelines.pyfunc_model import SeqcastForecastModel``), so these names stay importable."""

from pipelines.forecasting.pyfunc import FORECASTER_ARTIFACT, SeqcastForecastModel
from pipelines.vision.pyfunc import CLASSIFIER_ARTIFACT, SeqcastClassifierModel

__all__ = ["CLASSIFIER_ARTIFACT", "FORECASTER_ARTIFACT", "SeqcastClassifierModel", "SeqcastForecastModel"]
