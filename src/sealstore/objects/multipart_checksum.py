"""Multipart checksums: CRC combination and the checks of CompleteMultipartUpload.

A COMPOSITE checksum is ``hash(concat(binary part digests))``, shown with ``-N``; a
FULL_OBJECT one of a multipart object is the CRC of the whole content, obtained by *combining*
the parts' CRCs with GF(2) arithmetic (zlib's ``crc32_combine``, for any reflected width), so
no part is read again. `finish` checks what a CompleteMultipartUpload request says about
checksums against the stored parts and produces the object's entry; `finish_upload` is the
object service's entry point (it lists the stored parts only when checksums are involved).
"""

from __future__ import annotations

import base64
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from functools import cache

from sealstore.objects.checksum import (
    ALGORITHMS,
    COMPOSITE,
    META_CHECKSUM,
    META_UPLOAD_CHECKSUM,
    Checksum,
    b64decode,
    new_hasher,
    stored,
    upload_choice,
)
from sealstore.objects.errors import BadDigest, InvalidPartETag, InvalidRequest
from sealstore.objects.layout import chosen_parts
from sealstore.storage.base import PartMeta, UploadMeta
from sealstore.storage.contract import Store

# Normal polynomial, width (RevEng catalogue); all three are reflected with init = xorout =
# all ones, which is what makes the plain combination rule below exact.
_CRC_PARAMS: dict[str, tuple[int, int]] = {
    "crc32": (0x04C11DB7, 32),
    "crc32c": (0x1EDC6F41, 32),
    "crc64nvme": (0xAD93D23594C93659, 64),
}


# --------------------------------------------------------------------------- CRC combination


def _reflect(value: int, width: int) -> int:
    return int(f"{value:0{width}b}"[::-1], 2)


@cache
def _reflected_poly(alg: str) -> tuple[int, int]:
    poly, width = _CRC_PARAMS[alg]
    return _reflect(poly, width), width


def _multmodp(a: int, b: int, poly: int, width: int) -> int:
    """a * b modulo the polynomial, both in reflected bit order (x^0 is the top bit)."""
    m = 1 << (width - 1)
    p = 0
    while True:
        if a & m:
            p ^= b
            if (a & (m - 1)) == 0:
                return p
        m >>= 1
        b = (b >> 1) ^ poly if b & 1 else b >> 1


def _x8n(n: int, poly: int, width: int) -> int:
    """x^(8n) modulo the polynomial (square and multiply: O(width * log n))."""
    result = 1 << (width - 1)  # x^0
    base = 1 << (width - 1 - 8)  # x^8
    while n:
        if n & 1:
            result = _multmodp(base, result, poly, width)
        base = _multmodp(base, base, poly, width)
        n >>= 1
    return result


def crc_combine(alg: str, crc1: int, crc2: int, len2: int) -> int:
    """CRC(A || B) from CRC(A), CRC(B) and len(B) in bytes.

    With init = xorout the register algebra gives CRC(AB) = CRC(A) * x^(8 len B) + CRC(B)
    over GF(2) (zlib's crc32_combine, generalised to any reflected width).
    """
    poly, width = _reflected_poly(alg)
    return _multmodp(_x8n(len2, poly, width), crc1, poly, width) ^ crc2


def combine_full(alg: str, parts: Sequence[tuple[bytes, int]]) -> bytes:
    """The FULL_OBJECT CRC of the concatenation of parts given as ``(digest, size)``."""
    size = ALGORITHMS[alg]
    value = int.from_bytes(parts[0][0], "big")
    for digest, length in parts[1:]:
        value = crc_combine(alg, value, int.from_bytes(digest, "big"), length)
    return value.to_bytes(size, "big")


def composite(alg: str, digests: Sequence[bytes]) -> bytes:
    """The COMPOSITE checksum: ``alg`` over the concatenated binary part digests."""
    h = new_hasher(alg)
    for d in digests:
        h.update(d)
    return h.digest()


# --------------------------------------------------------------------------- completion


@dataclass(frozen=True)
class Completion:
    """What a CompleteMultipartUpload request says about checksums.

    ``parts``: part number -> ``(algorithm, base64)`` from each ``<Part>``; ``whole``: the
    ``x-amz-checksum-<alg>`` header (the expected object checksum); ``type``: the
    ``x-amz-checksum-type`` header.
    """

    parts: dict[int, tuple[str, str]] = field(default_factory=dict)
    whole: tuple[str, str] | None = None
    type: str | None = None

    @property
    def empty(self) -> bool:
        """True when the request names no checksum at all."""
        return not self.parts and self.whole is None and self.type is None


def involved(upload_internal: Mapping[str, str], req: Completion | None) -> bool:
    """Whether completing needs the stored parts for checksums (never for plain uploads)."""
    return upload_choice(upload_internal) is not None or (req is not None and not req.empty)


def _missing(alg: str, number: int) -> InvalidRequest:
    return InvalidRequest(
        f"The upload was created using a {alg} checksum. The complete request must include "
        f"the checksum for each part. It was missing for part {number} in the request."
    )


def _check_part(alg: str | None, typ: str, part: PartMeta, given: tuple[str, str] | None) -> None:
    if alg is None:
        if given is not None:
            raise InvalidPartETag(f"part {part.number}: the upload has no checksum algorithm")
        return
    if given is None:
        if typ == COMPOSITE:
            raise _missing(alg, part.number)
        return
    given_alg, value = given
    have = stored(part.internal)
    if given_alg != alg:
        raise BadDigest(
            f"The {given_alg} you specified for part {part.number} did not match what we received."
        )
    if have is None or b64decode(alg, value) != have.digest:
        raise InvalidPartETag(f"part {part.number}: the {alg} checksum does not match")


def finish(
    internal: Mapping[str, str], chosen: Sequence[PartMeta], req: Completion | None
) -> dict[str, str]:
    """The completed object's internal entries: the upload's, with its algorithm choice
    replaced by the object's checksum, after checking what the request says.

    InvalidRequest (missing part checksum, other checksum mode), InvalidPart (a part
    checksum that is not the stored one), BadDigest (the whole-object value differs).
    """
    req = req or Completion()
    out = {k: v for k, v in internal.items() if k not in (META_UPLOAD_CHECKSUM, META_CHECKSUM)}
    choice = upload_choice(internal)
    alg, typ = choice if choice is not None else (None, "")
    if req.type is not None and req.type != typ:
        raise InvalidRequest(
            f"The upload was created using the {typ or 'null'} checksum mode. The complete "
            "request must use the same checksum mode."
        )
    for part in chosen:
        _check_part(alg, typ, part, req.parts.get(part.number))
    if alg is None:
        return out
    digests = []
    for part in chosen:
        have = stored(part.internal)
        if have is None or have.algorithm != alg:
            raise InvalidPartETag(f"part {part.number} carries no {alg} checksum")
        digests.append((have.digest, part.size))
    if typ == COMPOSITE:
        value = composite(alg, [d for d, _ in digests])
        result = Checksum(alg, base64.b64encode(value).decode(), COMPOSITE, len(chosen))
    else:
        result = Checksum(alg, base64.b64encode(combine_full(alg, digests)).decode())
    if req.whole is not None and req.whole[0] == alg:
        want = req.whole[1].strip()
        if want not in (result.value, result.shown):
            raise BadDigest(
                f"The {alg.upper()} you specified did not match the calculated checksum."
            )
    out.update(result.entry())
    return out


async def finish_upload(
    store: Store,
    upload: UploadMeta,
    parts: list[tuple[int, str]],
    internal: dict[str, str],
    req: Completion | None,
) -> dict[str, str]:
    """`finish` over the parts a completion names (read from ``store``); ``internal``
    unchanged, and no storage call, for an upload and request without any checksum."""
    if not involved(upload.meta.internal, req):
        return internal
    return finish(internal, await chosen_parts(store, upload, parts), req)
