"""The artifact store in S3-compatible object storage (AWS S3, MinIO, Ceph, Garage, ...), through boto3.

Credentials come the usual boto3 way (``AWS_ACCESS_KEY_ID``/``AWS_SECRET_ACCESS_KEY``,
a profile, an instance role) unless the settings name them.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

from voxserve.storage.base import READ_BLOCK, StorageError


class S3Store:
    """Objects under ``prefix`` in ``bucket``; a missing object is None, every other failure a
    :class:`StorageError` that names the bucket."""

    def __init__(self, bucket: str, prefix: str = "", client: Any = None, **client_options: Any) -> None:
        import boto3
        import boto3.exceptions
        import botocore.exceptions

        self.bucket = bucket
        self.prefix = prefix.strip("/") + "/" if prefix.strip("/") else ""
        self._client = client or boto3.client("s3", **client_options)
        self._errors = (
            botocore.exceptions.BotoCoreError,
            botocore.exceptions.ClientError,
            boto3.exceptions.Boto3Error,
        )

    def _key(self, key: str) -> str:
        return self.prefix + key

    def _call(self, method: str, **arguments: Any) -> Any:
        """One request; None for a missing object, StorageError for any other failure."""
        try:
            return getattr(self._client, method)(Bucket=self.bucket, **arguments)
        except self._errors as exc:
            code = getattr(exc, "response", {}).get("Error", {}).get("Code")
            if code in ("NoSuchKey", "404", "NotFound"):
                return None
            raise StorageError(f"object storage (bucket {self.bucket!r}) failed: {exc}") from exc

    def local_path(self, key: str) -> Path | None:
        return None

    def put_file(self, key: str, path: Path) -> None:
        try:
            self._client.upload_file(str(path), self.bucket, self._key(key))  # multipart when large
        except self._errors as exc:
            raise StorageError(f"object storage (bucket {self.bucket!r}) failed: {exc}") from exc

    def put_bytes(self, key: str, data: bytes) -> None:
        self._call("put_object", Key=self._key(key), Body=data)

    def get_bytes(self, key: str) -> bytes | None:
        answer = self._call("get_object", Key=self._key(key))
        return None if answer is None else bytes(answer["Body"].read())

    def size(self, key: str) -> int | None:
        answer = self._call("head_object", Key=self._key(key))
        return None if answer is None else int(answer["ContentLength"])

    def read(self, key: str, start: int = 0, end: int | None = None) -> Iterator[bytes]:
        if end is not None and end <= start:
            return
        wanted = f"bytes={start}-{'' if end is None else end - 1}"
        answer = self._call("get_object", Key=self._key(key), Range=wanted)
        if answer is None:
            raise FileNotFoundError(key)
        body = answer["Body"]
        try:
            yield from body.iter_chunks(READ_BLOCK)
        finally:
            body.close()

    def _objects(self, prefix: str) -> Iterator[dict[str, Any]]:
        token: dict[str, str] = {}
        while True:
            page = self._call("list_objects_v2", Prefix=self._key(prefix), **token)
            yield from page.get("Contents", [])
            if not page.get("IsTruncated"):
                return
            token = {"ContinuationToken": page["NextContinuationToken"]}

    def keys(self, prefix: str) -> list[str]:
        return sorted(item["Key"][len(self.prefix) :] for item in self._objects(prefix))

    def usage(self, prefix: str) -> int:
        return sum(int(item["Size"]) for item in self._objects(prefix))

    def delete(self, key: str) -> None:
        self._call("delete_object", Key=self._key(key))

    def delete_prefix(self, prefix: str) -> None:
        keys = [item["Key"] for item in self._objects(prefix)]
        for start in range(0, len(keys), 1000):  # the most one request may delete
            batch = [{"Key": key} for key in keys[start : start + 1000]]
            self._call("delete_objects", Delete={"Objects": batch, "Quiet": True})
