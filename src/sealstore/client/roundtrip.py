"""Verified SSE round trips against an S3 endpoint.

Every check is recorded (name, object, ok, detail) rather than raised, so one run tells an
operator everything that is wrong; only errors that make further checks pointless (endpoint
down, bad credentials, TLS) abort the run. Bodies are streamed both ways: uploads read from a
seekable generator, downloads are hashed chunk by chunk.
"""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass
from typing import Any

from sealstore.client import content
from sealstore.client.config import Credentials
from sealstore.client.endpoint import (
    FatalClientError,
    describe_error,
    error_code,
    fetch_kms_status,
)
from sealstore.client.report import Check, ObjectRecord, Report

SSE = "AES256"
MIN_PART = 5 << 20
PACKAGE = 65536


@dataclass
class Options:
    """Round-trip settings from the command line."""

    endpoint: str
    region: str
    modes: list[str]
    sizes: list[int]
    multipart_size: int
    range_checks: bool
    keep: bool
    bucket: str | None = None
    ca_bundle: str | None = None
    seed: str | None = None


def _sse_of(response: dict[str, Any]) -> str | None:
    value = response.get("ServerSideEncryption")
    return str(value) if value else None


def _expected_sse(mode: str) -> str | None:
    return None if mode == "plain" else SSE


def _hint(mode: str, got: str | None) -> str:
    """A likely cause when the SSE header is not what the mode expects."""
    if got == _expected_sse(mode):
        return ""
    if mode == "auto":
        return " (want AES256: is MINIO_SSE_AUTO_ENCRYPTION=on on the server?)"
    if mode == "plain":
        return " (want none: the server encrypts everything; drop 'plain' from --modes)"
    return f" (want {SSE})"


class RoundTrip:
    """Runs the checks of one ``roundtrip`` invocation against a boto3 S3 client."""

    def __init__(self, s3: Any, creds: Credentials, opts: Options) -> None:
        self.s3 = s3
        self.creds = creds
        self.opts = opts
        self.report = Report(opts.endpoint, opts.region, opts.seed or content.new_seed())
        self._index = 0
        self._created: list[str] = []
        self._usable: dict[str, bool] = {}

    # -- recording -------------------------------------------------------------------------
    def _check(self, name: str, ok: bool, detail: str = "", obj: str | None = None) -> bool:
        self.report.checks.append(Check(name, ok, detail, obj))
        return ok

    def _call(self, name: str, obj: str | None, fn: Any, **kwargs: Any) -> Any:
        """Run one S3 call; record a failed check (or abort on fatal errors) on exception."""
        try:
            return fn(**kwargs)
        except Exception as exc:
            line, fatal = describe_error(exc, self.opts.endpoint)
            if fatal:
                raise FatalClientError(line) from None
            self._check(name, False, line, obj)
            return None

    # -- the run ---------------------------------------------------------------------------
    def run(self) -> Report:
        try:
            self._run()
        except FatalClientError as exc:
            self.report.fatal = str(exc)
        except Exception as exc:  # e.g. a body stream broken mid-read: still one clear line
            self.report.fatal = describe_error(exc, self.opts.endpoint)[0]
        finally:
            try:
                self._cleanup()
            except FatalClientError as exc:
                self.report.fatal = self.report.fatal or f"cleanup: {exc}"
        return self.report

    def _bucket_names(self) -> tuple[str, str]:
        base = self.opts.bucket or f"sealstore-verify-{secrets.token_hex(4)}"
        return base, (base[:60] + "-bd")

    def _run(self) -> None:
        opts = self.opts
        if any(m != "plain" for m in opts.modes):
            self._kms_status()
        main_bucket, bd_bucket = self._bucket_names()
        for mode in opts.modes:
            bucket = bd_bucket if mode == "bucket-default" else main_bucket
            if bucket not in self._usable:
                self._usable[bucket] = self._make_bucket(bucket, mode)
            if not self._usable[bucket]:
                continue
            for size in opts.sizes:
                record = self._single_put(bucket, mode, size)
                if record is not None and opts.range_checks:
                    self._ranges(record)
            if opts.multipart_size > 0:
                record = self._multipart(bucket, mode, opts.multipart_size)
                if record is not None and opts.range_checks:
                    self._ranges(record)

    def _kms_status(self) -> None:
        status = fetch_kms_status(
            self.opts.endpoint, self.opts.region, self.creds, self.opts.ca_bundle
        )
        self.report.kms = status
        if status.available:
            detail = f"key-id={status.key_id}" if status.ok else f"KMS self-test: {status.error}"
            self._check("kms-status", status.ok, detail)

    def _make_bucket(self, bucket: str, mode: str) -> bool:
        self.report.buckets.append(bucket)
        try:
            self.s3.create_bucket(Bucket=bucket)
            self._created.append(bucket)
        except Exception as exc:
            line, fatal = describe_error(exc, self.opts.endpoint)
            if fatal:
                raise FatalClientError(line) from None
            if error_code(exc) != "BucketAlreadyOwnedByYou":
                return self._check("create-bucket", False, line, bucket)
        if mode != "bucket-default":
            return True
        rule = {"ApplyServerSideEncryptionByDefault": {"SSEAlgorithm": SSE}}
        put = self._call(
            "bucket-encryption",
            bucket,
            self.s3.put_bucket_encryption,
            Bucket=bucket,
            ServerSideEncryptionConfiguration={"Rules": [rule]},
        )
        if put is None:
            return False
        got = self._call("bucket-encryption", bucket, self.s3.get_bucket_encryption, Bucket=bucket)
        if got is None:
            return False
        rules = got.get("ServerSideEncryptionConfiguration", {}).get("Rules", [])
        algos = [r.get("ApplyServerSideEncryptionByDefault", {}).get("SSEAlgorithm") for r in rules]
        return self._check(
            "bucket-encryption", algos == [SSE], f"default rule {algos or 'missing'}", bucket
        )

    def _new_record(self, bucket: str, mode: str, size: int, multipart: bool) -> ObjectRecord:
        seed = content.object_seed(self.report.seed, self._index)
        self._index += 1
        kind = "multipart" if multipart else "single"
        key = f"sealstore-roundtrip/{self.report.seed}/{mode}/{kind}-{size}"
        sha, md5 = content.digests(seed, size)
        return ObjectRecord(bucket, key, mode, size, seed, sha, md5, multipart)

    def _put_args(self, mode: str) -> dict[str, Any]:
        return {"ServerSideEncryption": SSE} if mode == "sse-s3" else {}

    def _single_put(self, bucket: str, mode: str, size: int) -> ObjectRecord | None:
        rec = self._new_record(bucket, mode, size, multipart=False)
        body = content.ContentReader(rec.seed, size)
        resp = self._call(
            "put",
            rec.key,
            self.s3.put_object,
            Bucket=bucket,
            Key=rec.key,
            Body=body,
            ContentLength=size,
            **self._put_args(mode),
        )
        if resp is None:
            return None
        self.report.objects.append(rec)
        want = _expected_sse(mode)
        got = _sse_of(resp)
        self._check("put", got == want, f"{mode} {size} B, sse={got}{_hint(mode, got)}", rec.key)
        self._verify(rec, expect_etag=f'"{rec.md5}"')
        return rec

    def _multipart(self, bucket: str, mode: str, size: int) -> ObjectRecord | None:
        rec = self._new_record(bucket, mode, size, multipart=True)
        part_size = max(MIN_PART, -(-size // 10000))
        created = self._call(
            "multipart",
            rec.key,
            self.s3.create_multipart_upload,
            Bucket=bucket,
            Key=rec.key,
            **self._put_args(mode),
        )
        if created is None:
            return None
        upload_id = created["UploadId"]
        parts: list[dict[str, Any]] = []
        md5s = b""
        offset = 0
        number = 1
        while offset < size or number == 1:
            n = min(part_size, size - offset)
            data = content.generate(rec.seed, offset, n)
            md5s += hashlib.md5(data, usedforsecurity=False).digest()
            resp = self._call(
                "multipart",
                rec.key,
                self.s3.upload_part,
                Bucket=bucket,
                Key=rec.key,
                UploadId=upload_id,
                PartNumber=number,
                Body=data,
            )
            if resp is None:
                self._call(
                    "multipart-abort",
                    rec.key,
                    self.s3.abort_multipart_upload,
                    Bucket=bucket,
                    Key=rec.key,
                    UploadId=upload_id,
                )
                return None
            parts.append({"ETag": resp["ETag"], "PartNumber": number})
            offset += n
            number += 1
        done = self._call(
            "multipart",
            rec.key,
            self.s3.complete_multipart_upload,
            Bucket=bucket,
            Key=rec.key,
            UploadId=upload_id,
            MultipartUpload={"Parts": parts},
        )
        if done is None:
            return None
        rec.parts = len(parts)
        self.report.objects.append(rec)
        want = _expected_sse(mode)
        got = _sse_of(done) or _sse_of(created)
        self._check(
            "multipart",
            got == want,
            f"{mode} {size} B in {len(parts)} parts, sse={got}{_hint(mode, got)}",
            rec.key,
        )
        etag = hashlib.md5(md5s, usedforsecurity=False).hexdigest()
        self._verify(rec, expect_etag=f'"{etag}-{len(parts)}"')
        return rec

    def _verify(self, rec: ObjectRecord, expect_etag: str) -> None:
        want = _expected_sse(rec.mode)
        got = self._call("get", rec.key, self.s3.get_object, Bucket=rec.bucket, Key=rec.key)
        if got is not None:
            sha = hashlib.sha256()
            n = 0
            for piece in got["Body"].iter_chunks(1 << 20):
                sha.update(piece)
                n += len(piece)
            digest = sha.hexdigest()
            ok = digest == rec.sha256 and n == rec.size and _sse_of(got) == want
            detail = f"sha256 {'matches' if digest == rec.sha256 else 'DIFFERS'}, {n} B"
            self._check("get", ok, detail + f", sse={_sse_of(got)}", rec.key)
        head = self._call("head", rec.key, self.s3.head_object, Bucket=rec.bucket, Key=rec.key)
        if head is None:
            return
        rec.sse = _sse_of(head)
        rec.etag = str(head.get("ETag", ""))
        length = head.get("ContentLength")
        self._check(
            "head",
            rec.sse == want and length == rec.size,
            f"x-amz-server-side-encryption={rec.sse or 'absent'} (want {want or 'absent'}), "
            f"Content-Length={length}",
            rec.key,
        )
        self._check("etag", rec.etag == expect_etag, f"{rec.etag} (want {expect_etag})", rec.key)

    def _ranges(self, rec: ObjectRecord) -> None:
        size = rec.size
        spans: list[tuple[int, int]] = []  # inclusive [first, last]
        if size >= PACKAGE + 2:
            spans.append((PACKAGE - 1, PACKAGE + 1))
        if size >= 17:
            spans.append((size - 17, size - 1))
        if size >= 1:
            spans.append((size - 1, size - 1))
        if rec.multipart and rec.parts > 1:
            boundary = max(MIN_PART, -(-size // 10000))
            spans.append((max(0, boundary - PACKAGE - 1), min(size - 1, boundary + PACKAGE + 1)))
        for first, last in spans:
            header = f"bytes={first}-{last}"
            resp = self._call(
                "range", rec.key, self.s3.get_object, Bucket=rec.bucket, Key=rec.key, Range=header
            )
            if resp is None:
                continue
            body = resp["Body"].read()
            want = content.generate(rec.seed, first, last - first + 1)
            content_range = resp.get("ContentRange", "")
            ok = body == want and content_range == f"bytes {first}-{last}/{size}"
            self._check(
                "range",
                ok,
                f"{header}: {'bytes match' if body == want else 'bytes DIFFER'}, "
                f"Content-Range={content_range!r}",
                rec.key,
            )

    def _cleanup(self) -> None:
        if self.opts.keep:
            self.report.kept = True
            return
        if self.report.fatal:
            return
        for rec in self.report.objects:
            self._call("cleanup", rec.key, self.s3.delete_object, Bucket=rec.bucket, Key=rec.key)
        for bucket in self._created:
            self._call("cleanup", bucket, self.s3.delete_bucket, Bucket=bucket)
