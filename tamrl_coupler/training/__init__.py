"""Training loop, grouped cross-validation and metrics."""
