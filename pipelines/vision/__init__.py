"""Image classification: image data, the Classifier, its training pipeline, plots and pyfunc class."""
