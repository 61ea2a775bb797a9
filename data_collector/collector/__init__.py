"""Prediction collector: evaluates model servers on the labelled test set and stores every answer."""

__version__ = "0.1.0"
