"""The HTTP API."""

from voxserve.api.app import create_app

__all__ = ["create_app"]
