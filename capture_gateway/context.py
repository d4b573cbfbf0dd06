"""What handlers need, opened once by the application's lifespan."""

from __future__ import annotations

from dataclasses import dataclass

from capture_gateway.bodies import BodyReader
from capture_gateway.limits import HotKeys, QuotaTracker, RateLimiter
from capture_gateway.producer import KafkaProducer
from capture_gateway.publish import Publisher
from headwater.runtime.projects import ProjectResolver
from headwater.runtime.topology import Topology


@dataclass
class GatewayContext:
    """The gateway's connections and limiters (``app.state.gateway``)."""

    topology: Topology
    producer: KafkaProducer
    publisher: Publisher
    projects: ProjectResolver
    rate_limiter: RateLimiter
    quotas: QuotaTracker
    hot_keys: HotKeys
    trusted_proxies: frozenset[str]
    bodies: BodyReader
