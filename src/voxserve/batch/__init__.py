"""Bulk production: a manifest of items in, one audio file per item out, as fast as the servers allow."""

from voxserve.batch.concurrency import AdaptiveLimit
from voxserve.batch.manifest import Item, ManifestError, read_manifest
from voxserve.batch.results import Result
from voxserve.batch.run import Batch, BatchOptions

__all__ = ["AdaptiveLimit", "Batch", "BatchOptions", "Item", "ManifestError", "Result", "read_manifest"]
