"""Training: the built-in datasets and estimators, and retraining jobs."""
