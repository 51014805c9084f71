"""decisionflow: workers."""
