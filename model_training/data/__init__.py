"""model_training.data."""
