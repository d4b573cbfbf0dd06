"""Event-time windows: tumbling and hopping, with grace for late events (``streams.windows.engine``)."""
