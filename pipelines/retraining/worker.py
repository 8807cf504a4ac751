"""What every pool worker needs loaded before its first series, imported once by the pool's fork server
(:func:`pipelines.retraining.fanout.pool_context`): each worker forked from it starts with TensorFlow, Keras, MLflow and the
task's code in memory instead of importing them itself."""

from pipelines.process import import_tensorflow_quietly, quiet_libraries

quiet_libraries()
import_tensorflow_quietly()  # imported, not started: its threads start at a worker's first operation, after the fork

import pipelines.forecasting.pipeline  # noqa: E402, F401  (what a challenge loads: the training pipeline and models)
