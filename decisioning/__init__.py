"""decisionflow: decisioning."""
