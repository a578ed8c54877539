"""Training: distillation, evaluation and the DeepInversion baseline."""
