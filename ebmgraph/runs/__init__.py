"""The application layer: the training loop, run directories (restore, sample, evaluate)."""
