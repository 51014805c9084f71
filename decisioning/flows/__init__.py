"""Decision flows shipped with decisionflow (package data: ``*.yaml``)."""
