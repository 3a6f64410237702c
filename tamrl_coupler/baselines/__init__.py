"""Models TAM-RL is compared with in cross-validation (XGBoost on the same drivers)."""
