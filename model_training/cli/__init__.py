"""model_training.cli."""
