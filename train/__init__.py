"""Training: datasets, models, losses, the training loop, evaluation and figures (uses torch)."""
