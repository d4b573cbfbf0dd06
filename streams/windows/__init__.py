"""Event-time windows: the engine (pure), the two steps that run it (``runner``), their Kafka side (``kafka``)."""
