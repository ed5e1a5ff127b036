"""Routing: pools of engine instances with balancing, adaptive limits, queueing, retries and health."""

from voxserve.routing.instance import Instance, Role
from voxserve.routing.limits import AdaptiveLimit, FixedLimit
from voxserve.routing.pool import Pool, PoolSettings

__all__ = ["AdaptiveLimit", "FixedLimit", "Instance", "Pool", "PoolSettings", "Role"]
