# The models-from-code entry MLflow runs when it loads a seqcast image classifier.
import mlflow

from pipelines.vision.pyfunc import SeqcastClassifierModel

mlflow.models.set_model(SeqcastClassifierModel())
