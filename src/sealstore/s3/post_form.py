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
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass

from aiohttp.http_exceptions import PayloadEncodingError
from aiohttp.web_protocol import RequestPayloadError

from sealstore.s3.body import MAX_UPLOAD_SIZE, OFFLOAD_HASHING_AT
from sealstore.s3.errors import S3Error
from sealstore.s3.form_data import FormError, FormLimitError, FormReader

__all__ = ["MAX_FORM_BYTES", "FileBody", "PostForm", "read_fields"]

# S3: "Your POST request fields preceding the upload file were too large" past 20 KB.
MAX_FORM_BYTES = 20 * 1024
FILE_FIELD = "file"
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


class FileBody:
    """The ``file`` part as a hashed, bounded body (see the module docstring).

    ``check_size(size, final)`` is the policy's content-length-range check (None without a
    policy); it runs after every piece and once more, with ``final=True``, at the end, before
    the iteration finishes, so a body outside the range never reaches ``writer.commit``.
    """

    def __init__(
        self,
        pieces: AsyncIterator[bytes],
        check_size: Callable[[int, bool], None] | None = None,
        max_size: int = MAX_UPLOAD_SIZE,
    ) -> None:
        self._pieces = pieces
        self._check = check_size
        self._max_size = max_size
        self._md5 = hashlib.md5(usedforsecurity=False)
        self.size = 0
        self.md5_hex: str | None = None

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
                    await asyncio.to_thread(self._md5.update, piece)
                else:
                    self._md5.update(piece)
                yield piece
        except FormError as exc:
            raise _malformed(str(exc)) from None
        except _STREAM_ERRORS:
            raise S3Error("IncompleteBody") from None
        self._bound(final=True)
        self.md5_hex = self._md5.hexdigest()
