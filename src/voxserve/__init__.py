"""voxserve: a self-hosted speech synthesis service."""

__version__ = "0.1.0"
