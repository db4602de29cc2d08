"""A browser upload's form as S3 reads it: small fields first, then the ``file`` streamed.

:func:`read_fields` reads parts up to the one named ``file`` (field names are
case-insensitive, so they are kept lower-cased) and stops there: S3 ignores everything after
the file, and the file itself is never buffered.  The fields together (values plus part
headers) may take at most :data:`MAX_FORM_BYTES`, S3's 20 KB, so a form costs bounded memory
before any authentication has happened.  :class:`FileBody` then turns the file part into the
body :meth:`ObjectService.put` consumes: MD5 for the ETag, and the policy's
``content-length-range`` and S3's 5 GiB bound enforced while it streams, so an oversized file
fails the put (the writer is discarded, nothing is stored) as soon as it passes the limit.

Form and stream failures become S3's codes here: ``MalformedPOSTRequest``,
``MaxPostPreDataLengthExceededError``, ``IncorrectNumberOfFilesInPostRequest`` and (a client
that went away mid-body) ``IncompleteBody``.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
from collections.abc import AsyncIterator, Callable, Mapping
from dataclasses import dataclass

from aiohttp.http_exceptions import PayloadEncodingError
from aiohttp.web_protocol import RequestPayloadError

from sealstore.s3.body import MAX_UPLOAD_SIZE, OFFLOAD_HASHING_AT
from sealstore.s3.checksums import HEADER_PREFIX, decode_checksum_value, header_name, new_checksum
from sealstore.s3.errors import S3Error
from sealstore.s3.form_data import FormError, FormLimitError, FormReader

__all__ = ["MAX_FORM_BYTES", "FileBody", "PostForm", "form_checksums", "read_fields"]

# S3: "Your POST request fields preceding the upload file were too large" past 20 KB.
MAX_FORM_BYTES = 20 * 1024
FILE_FIELD = "file"
# x-amz-checksum-* names that are settings, not values.
_CHECKSUM_SETTINGS = frozenset({"algorithm", "type", "mode"})
_STREAM_ERRORS = (
    RequestPayloadError,
    PayloadEncodingError,
    asyncio.IncompleteReadError,
    ConnectionError,
)


def _malformed(detail: str) -> S3Error:
    return S3Error(
        "MalformedPOSTRequest",
        f"The body of your POST request is not well-formed multipart/form-data: {detail}",
    )


@dataclass(frozen=True)
class PostForm:
    """The fields before the file (lower-case names -> values, in form order) and the
    file part's filename (``${filename}`` in the key is replaced by it)."""

    fields: dict[str, str]
    filename: str | None


async def read_fields(reader: FormReader, limit: int = MAX_FORM_BYTES) -> PostForm:
    """Read fields up to the ``file`` part, which is left for :class:`FileBody`."""
    used = 0
    fields: dict[str, str] = {}
    try:
        while True:
            part = await reader.next_part(max(0, limit - used))
            if part is None:
                raise S3Error("IncorrectNumberOfFilesInPostRequest")
            used += part.header_size
            name = part.name.lower()
            if name == FILE_FIELD:
                return PostForm(fields, part.filename)
            raw = await reader.read_value(max(0, limit - used))
            used += len(raw)
            if used > limit:
                raise FormLimitError("fields too large")
            if name in fields:
                raise S3Error(
                    "InvalidArgument",
                    f"The form field {name[:64]} appears more than once.",
                    extra={"ArgumentName": name[:64]},
                )
            try:
                fields[name] = raw.decode("utf-8")
            except UnicodeDecodeError:
                raise _malformed(f"the value of {name[:64]} is not UTF-8") from None
    except FormLimitError:
        raise S3Error(
            "MaxPostPreDataLengthExceededError",
            extra={"MaxPostPreDataLength": str(limit)},
        ) from None
    except FormError as exc:
        raise _malformed(str(exc)) from None
    except _STREAM_ERRORS:
        raise S3Error("IncompleteBody") from None


def form_checksums(fields: Mapping[str, str]) -> dict[str, bytes]:
    """The ``x-amz-checksum-<algorithm>`` fields (algorithm -> expected digest), checked for
    form as a PUT's checksum headers are (InvalidRequest), at most one as S3 allows."""
    out: dict[str, bytes] = {}
    for name, value in fields.items():
        alg = name[len(HEADER_PREFIX) :] if name.startswith(HEADER_PREFIX) else ""
        if alg and alg not in _CHECKSUM_SETTINGS:
            out[alg] = decode_checksum_value(alg, value)
    if len(out) > 1:
        raise S3Error(
            "InvalidRequest",
            "Expecting a single x-amz-checksum- header. Multiple checksum Types are not allowed.",
        )
    return out


class FileBody:
    """The ``file`` part as a hashed, bounded body (see the module docstring).

    ``check_size(size, final)`` is the policy's content-length-range check (None without a
    policy); it runs after every piece and once more, with ``final=True``, at the end, before
    the iteration finishes, so a body outside the range never reaches ``writer.commit``; so do
    the ``checksums`` the form declared (BadDigest).  ``.checksums`` then holds the headers to
    echo (``x-amz-checksum-<alg>`` -> base64).
    """

    def __init__(
        self,
        pieces: AsyncIterator[bytes],
        check_size: Callable[[int, bool], None] | None = None,
        *,
        expected: Mapping[str, bytes] | None = None,
        max_size: int = MAX_UPLOAD_SIZE,
    ) -> None:
        self._pieces = pieces
        self._check = check_size
        self._max_size = max_size
        self._md5 = hashlib.md5(usedforsecurity=False)
        self._expected = dict(expected or {})
        self._hashers = {alg: new_checksum(alg) for alg in self._expected}
        self.size = 0
        self.md5_hex: str | None = None
        self.checksums: dict[str, str] = {}

    def __aiter__(self) -> AsyncIterator[bytes]:
        return self._iterate()

    def _bound(self, final: bool) -> None:
        if self.size > self._max_size:
            raise S3Error(
                "EntityTooLarge",
                f"Your upload exceeds the maximum allowed size of {self._max_size} bytes.",
                extra={"MaxSizeAllowed": str(self._max_size)},
            )
        if self._check is not None:
            self._check(self.size, final)

    async def _iterate(self) -> AsyncIterator[bytes]:
        try:
            async for piece in self._pieces:
                self.size += len(piece)
                self._bound(final=False)
                if len(piece) >= OFFLOAD_HASHING_AT:
                    await asyncio.to_thread(self._hash, piece)
                else:
                    self._hash(piece)
                yield piece
        except FormError as exc:
            raise _malformed(str(exc)) from None
        except _STREAM_ERRORS:
            raise S3Error("IncompleteBody") from None
        self._bound(final=True)
        for alg, want in self._expected.items():
            if not hmac.compare_digest(self._hashers[alg].digest(), want):
                raise S3Error(
                    "BadDigest",
                    f"The {alg.upper()} you specified did not match the calculated checksum.",
                )
        self.checksums = {header_name(alg): h.b64() for alg, h in self._hashers.items()}
        self.md5_hex = self._md5.hexdigest()

    def _hash(self, piece: bytes) -> None:
        self._md5.update(piece)
        for hasher in self._hashers.values():
            hasher.update(piece)
