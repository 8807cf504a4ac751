# The models-from-code entry MLflow runs when it loads a seqcast forecaster.
import mlflow

from pipelines.pyfunc_model import SeqcastForecastModel

mlflow.models.set_model(SeqcastForecastModel())
