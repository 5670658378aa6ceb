"""model_training.model."""
