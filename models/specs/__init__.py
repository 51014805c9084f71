"""Feature specs shipped as package data (load with :func:`models.spec.load_spec`)."""
