"""The configured artifact store: ``storage.url`` is a directory (``file://`` or a path) or ``s3://``."""

from __future__ import annotations

from pathlib import Path
from urllib.parse import urlsplit

from voxserve.config import StorageSettings
from voxserve.storage.base import ArtifactStore
from voxserve.storage.local import LocalStore


def open_artifacts(settings: StorageSettings, data_dir: Path) -> ArtifactStore:
    """``data_dir`` itself when no URL is set: one machine, files where they always were."""
    if settings.url is None:
        return LocalStore(data_dir)
    parts = urlsplit(settings.url)
    if parts.scheme == "s3":
        from voxserve.storage.s3 import S3Store

        options = {
            "endpoint_url": settings.endpoint_url,
            "region_name": settings.region,
            "aws_access_key_id": settings.access_key_id,
            "aws_secret_access_key": (
                settings.secret_access_key.get_secret_value() if settings.secret_access_key else None
            ),
        }
        return S3Store(parts.netloc, parts.path, **{k: v for k, v in options.items() if v is not None})
    return LocalStore(Path(parts.path if parts.scheme == "file" else settings.url))
