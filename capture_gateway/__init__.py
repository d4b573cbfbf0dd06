"""The HTTP edge: PostHog's capture protocol in, envelopes of raw events into Kafka.

``create_app(settings)`` in ``capture_gateway.app`` builds the Starlette application.
"""
