"""FastAPI dependencies: the process's services, as routes receive them."""

from __future__ import annotations

from fastapi import Request

from voxserve.services import Services


async def get_services(request: Request) -> Services:
    """Async, so FastAPI does not hop to a worker thread for it on every request."""
    services: Services = request.app.state.services
    return services
