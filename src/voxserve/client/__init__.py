"""voxserve from Python: :class:`Client` (blocking) and :class:`AsyncClient` (asyncio) over httpx.

>>> from voxserve.client import Client
>>> with Client("http://127.0.0.1:8000") as voxserve:
...     audio = voxserve.speech("Hello.", voice="alloy", response_format="wav")

Errors are :class:`APIError` (the server's status, code, message and param) or
:class:`ConnectionFailed`; retryable ones are retried first, honouring ``Retry-After``.
"""

from voxserve.client.aio import AsyncClient
from voxserve.client.calls import Retry
from voxserve.client.errors import APIError, ConnectionFailed, VoxserveClientError
from voxserve.client.sync import Client

__all__ = ["APIError", "AsyncClient", "Client", "ConnectionFailed", "Retry", "VoxserveClientError"]
