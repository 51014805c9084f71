"""decisionflow storage: the decision store (SQLAlchemy Core; PostgreSQL, SQLite by default).

Five tables: events (the features decided on), decisions, shadow decisions, dead letters and
outcomes; idempotent writes keyed by event id, and the labelled rows retraining reads
(:func:`~storage.store.labelled_frame`). May import ``models`` (specs) and ``decisioning``
(contracts); nothing above.
"""
