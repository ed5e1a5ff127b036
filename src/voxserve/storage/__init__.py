"""Where finished job audio and the voice library live: a local directory (an NFS/NAS mount too) or
S3-compatible object storage, behind one small interface, so gateways and workers on different
machines hand audio to each other."""

from voxserve.storage.base import ArtifactStore, StorageError
from voxserve.storage.local import LocalStore
from voxserve.storage.open import open_artifacts

__all__ = ["ArtifactStore", "LocalStore", "StorageError", "open_artifacts"]
