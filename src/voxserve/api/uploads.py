"""Reading multipart uploads with their size limit checked before the bytes are taken."""

from __future__ import annotations

from fastapi import UploadFile

from voxserve.errors import PayloadTooLarge


async def read_upload(upload: UploadFile, limit: int, param: str) -> bytes:
    """The uploaded bytes; 413 naming ``param`` and the limit when there are more than ``limit``."""
    size = upload.size
    data = await upload.read(limit + 1) if size is None or size <= limit else b""
    if (size is not None and size > limit) or len(data) > limit:
        shown = size if size is not None else len(data)
        raise PayloadTooLarge(f"{param} is {shown} bytes; the limit is {limit} bytes", param=param)
    return data
