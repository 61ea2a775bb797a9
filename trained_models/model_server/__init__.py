"""One model server for every model folder in trained_models/."""

__version__ = "0.1.0"
