"""salescast.features: loaders, validation, the retail simulator and feature builders.

Pure transformation plus I/O of raw tables; no MLflow, no settings.
"""

from features.training_set import TrainingSet, TrainingSetMetadata

__all__ = ["TrainingSet", "TrainingSetMetadata"]
