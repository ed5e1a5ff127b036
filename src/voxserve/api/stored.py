"""Answering with a file from the artifact store: a local file as a ``FileResponse`` (sendfile,
Range, conditional requests), an object in shared storage read in ranges as it is sent."""

from __future__ import annotations

import asyncio

from fastapi.responses import FileResponse, Response, StreamingResponse
from starlette.responses import MalformedRangeHeader
from starlette.responses import RangeNotSatisfiable as RangeNotSatisfiableRange

from voxserve.errors import InvalidRequest, RangeNotSatisfiable, VoxserveError
from voxserve.storage import ArtifactStore


def check_range(header: str, size: int) -> list[tuple[int, int]]:
    """A Range header's byte ranges ([start, end)); errors in voxserve's own shape, with the size.

    Starlette's FileResponse answers a bad range itself, as plain text; checking first gives
    clients the same JSON error every other endpoint gives.
    """
    try:
        return FileResponse._parse_range_header(header, size)  # the one parser, not a copy
    except RangeNotSatisfiableRange:
        raise RangeNotSatisfiable(f"Range {header!r} is outside the file's {size} bytes", size=size) from None
    except MalformedRangeHeader as exc:
        raise InvalidRequest(f"Range {header!r} is malformed: {exc.content}", param="Range") from None


async def stored_response(
    artifacts: ArtifactStore,
    key: str,
    media_type: str,
    filename: str,
    range_header: str | None,
    missing: VoxserveError,
) -> Response:
    """The object under ``key`` (``missing`` is raised when it is not there), honouring one Range."""
    path = artifacts.local_path(key)
    size = await asyncio.to_thread(artifacts.size, key)
    if size is None:
        raise missing
    ranges = check_range(range_header, size) if range_header is not None else []
    if path is not None:
        return FileResponse(path, media_type=media_type, filename=filename)
    headers = {"Accept-Ranges": "bytes", "Content-Disposition": f'attachment; filename="{filename}"'}
    if len(ranges) == 1:  # several ranges from object storage: the whole object (RFC 9110 allows it)
        start, end = ranges[0]
        headers |= {"Content-Range": f"bytes {start}-{end - 1}/{size}", "Content-Length": str(end - start)}
        return StreamingResponse(
            artifacts.read(key, start, end), status_code=206, media_type=media_type, headers=headers
        )
    headers["Content-Length"] = str(size)
    return StreamingResponse(artifacts.read(key), media_type=media_type, headers=headers)
