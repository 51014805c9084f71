"""Click sub-commands of the `decisionflow` CLI, one module per area."""
