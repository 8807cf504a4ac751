"""The REST service: reads models from the MLflow registry, never trains."""
