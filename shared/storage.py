"""A small object-storage contract and its S3 implementation.

Callers never import botocore: a missing object is `FileNotFoundError`, any other
failure to reach or use the store is `StorageUnavailable` (transient: retry later).
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import Protocol

import boto3
import botocore.session
from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError
from botocore.handlers import add_expect_header

from shared.forks import per_process
from shared.s3_put import PutRefused, SignedPut
from shared.settings import Settings

NOT_FOUND = {"404", "NoSuchKey", "NotFound"}


class StorageUnavailable(RuntimeError):
    """The object store could not be reached or refused the operation; try again later."""


@dataclass(frozen=True)
class StoredObject:
    body: bytes
    content_type: str
    metadata: dict[str, str]


class Storage(Protocol):
    bucket: str

    def put(
        self,
        key: str,
        body: bytes,
        content_type: str,
        cache_control: str | None = None,
        metadata: dict[str, str] | None = None,
    ) -> None: ...

    def get(self, key: str) -> StoredObject: ...

    def delete(self, key: str) -> None: ...

    def etag(self, key: str) -> str | None: ...


@per_process
def aws_sessions() -> tuple[boto3.session.Session, botocore.session.Session]:
    """This process's boto3 session and the botocore session under it. A client made on a
    new session loads S3's service model again, ~0.1 s of CPU; on a kept one, a few
    milliseconds."""
    core = botocore.session.get_session()
    return boto3.session.Session(botocore_session=core), core


def s3_client(settings: Settings):
    """A boto3 S3 client for the configured endpoint, with bounded timeouts and retries.

    Its connection pool is at least as large as `s3_concurrency`, the thread pool that
    site builds and rebuilds run their requests on (boto3 clients are thread-safe), so
    no thread waits for a connection.

    It sends no `Expect: 100-continue`: botocore adds it to every PUT with a body, which
    costs each upload an extra wait for the server's interim answer (measured against
    moto: 14 ms a 3.4 kB PutObject with it, 7 ms without). Our bodies are pages, documents
    and photos already checked for size, so the server has no reason to refuse one early.

    It computes and checks S3's checksums only where an operation requires them (as boto3
    did before 1.36): its default CRC32 headers are refused by several S3-compatible
    servers (MinIO, Backblaze B2, Qumulo and others reported after 1.36), and they cost
    every PUT a pass over its body.
    """
    config = Config(
        connect_timeout=5,
        read_timeout=30,
        retries={"max_attempts": 3, "mode": "standard"},
        s3={"addressing_style": "path"},
        max_pool_connections=max(32, settings.s3_concurrency),
        request_checksum_calculation="when_required",
        response_checksum_validation="when_required",
    )
    client = aws_sessions()[0].client("s3", endpoint_url=settings.s3_endpoint_url, config=config)
    client.meta.events.unregister("before-call.s3", add_expect_header)
    return client


class S3Storage:
    """One bucket. With `signed_put` (the client's `SignedPut`), plain PUTs skip boto3's
    request pipeline; everything else, and any PUT that path hands back, goes through boto3."""

    def __init__(self, client, bucket: str, signed_put: SignedPut | None = None) -> None:
        self.client = client
        self.bucket = bucket
        self.signed_put = signed_put

    def put(
        self,
        key: str,
        body: bytes,
        content_type: str,
        cache_control: str | None = None,
        metadata: dict[str, str] | None = None,
    ) -> None:
        metadata = metadata or {}
        if self.signed_put is not None and all(map(_header_safe, metadata.values())):
            headers = {"Content-Type": content_type}
            if cache_control:
                headers["Cache-Control"] = cache_control
            headers.update({f"x-amz-meta-{name}": value for name, value in metadata.items()})
            try:
                if self.signed_put.put(self.bucket, key, body, headers):
                    return
            except PutRefused as exc:
                raise StorageUnavailable(f"put {self.bucket}/{key}: {exc}") from exc
        extra = {"CacheControl": cache_control} if cache_control else {}
        try:
            self.client.put_object(
                Bucket=self.bucket,
                Key=key,
                Body=body,
                ContentType=content_type,
                Metadata=metadata,
                **extra,
            )
        except (BotoCoreError, ClientError) as exc:
            raise StorageUnavailable(f"put {self.bucket}/{key}: {exc}") from exc

    def get(self, key: str) -> StoredObject:
        try:
            obj = self.client.get_object(Bucket=self.bucket, Key=key)
            return StoredObject(obj["Body"].read(), obj.get("ContentType", ""), obj.get("Metadata", {}))
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") in NOT_FOUND:
                raise FileNotFoundError(f"{self.bucket}/{key}") from None
            raise StorageUnavailable(f"get {self.bucket}/{key}: {exc}") from exc
        except BotoCoreError as exc:
            raise StorageUnavailable(f"get {self.bucket}/{key}: {exc}") from exc

    def delete(self, key: str) -> None:
        try:
            self.client.delete_object(Bucket=self.bucket, Key=key)
        except (BotoCoreError, ClientError) as exc:
            raise StorageUnavailable(f"delete {self.bucket}/{key}: {exc}") from exc

    def etag(self, key: str) -> str | None:
        """The object's ETag (MD5 of a single-part upload), or None when it does not exist."""
        try:
            return self.client.head_object(Bucket=self.bucket, Key=key)["ETag"].strip('"')
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") in NOT_FOUND:
                return None
            raise StorageUnavailable(f"head {self.bucket}/{key}: {exc}") from exc
        except BotoCoreError as exc:
            raise StorageUnavailable(f"head {self.bucket}/{key}: {exc}") from exc

    def check(self) -> None:
        """Raise StorageUnavailable unless the bucket answers."""
        try:
            self.client.head_bucket(Bucket=self.bucket)
        except (BotoCoreError, ClientError) as exc:
            raise StorageUnavailable(f"bucket {self.bucket}: {exc}") from exc


def signed_put(client) -> SignedPut | None:
    """The signed PUT beside a client `s3_client` made (None where it cannot stand in for boto3)."""
    return SignedPut.for_client(client, aws_sessions()[1])


def _header_safe(value: str) -> bool:
    """S3 user metadata travels in headers: printable ASCII goes as is, anything else is boto3's to encode."""
    return value.isascii() and value.isprintable()


def md5_hex(body: bytes) -> str:
    return hashlib.md5(body, usedforsecurity=False).hexdigest()


def ensure_buckets(settings: Settings) -> None:
    """Create the site and data buckets when missing (embedded stack, tests, compose)."""
    client = s3_client(settings)
    for bucket in (settings.site_bucket, settings.data_bucket):
        try:
            client.head_bucket(Bucket=bucket)
        except ClientError:
            client.create_bucket(Bucket=bucket)
