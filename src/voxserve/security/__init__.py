"""Security: API keys (stored hashed), scopes, quotas and rate limits, client addresses, moderation.

Each module is imported by name (``voxserve.security.guard``...): the package imports none of them,
so ``voxserve keys`` does not load the quota and Redis machinery it does not use.
"""
