# The models-from-code entry MLflow runs when it loads a seqcast panel model.
import mlflow

from pipelines.forecasting.pyfunc import SeqcastPanelModel

mlflow.models.set_model(SeqcastPanelModel())
