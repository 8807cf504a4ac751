# The models-from-code entry MLflow runs when it loads a seqcast forecaster.
import mlflow

from pipelines.forecasting.pyfunc import SeqcastForecastModel

mlflow.models.set_model(SeqcastForecastModel())
