"""Keras model builders, the name -> builder registry and the recursive forecaster."""
