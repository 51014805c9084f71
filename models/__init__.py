"""decisionflow: models."""
