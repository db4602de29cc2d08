"""S3 flexible checksums over HTTP: headers, trailers, XML elements and request rules.

The hashing, CRC combination and stored form live in `sealstore.objects.checksum` (the object
layer records checksums with objects and parts); this module is what the handlers need on the
wire: header names, validation of the client's checksum headers with S3's error codes and
wording, which checksum a GET/HEAD returns (``x-amz-checksum-mode: ENABLED`` only; never for
a range; a part's own for ``partNumber`` of a COMPOSITE object), and the ``Checksum*``
elements of CompleteMultipartUpload, ListParts, CopyObject and GetObjectAttributes.

Nothing here runs per chunk: with no checksum requested, PUT and GET pay nothing.
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Mapping
from typing import Final, Protocol

from sealstore.objects import checksum as ck
from sealstore.objects import multipart_checksum as mpck
from sealstore.s3.errors import S3Error
from sealstore.s3.xml import MalformedXMLError, child_text, local_name, parse, tag
from sealstore.storage.base import ObjectMeta

__all__ = [
    "ALGORITHMS",
    "HEADER_PREFIX",
    "Checksum",
    "completion",
    "create_choice",
    "decode_checksum_value",
    "get_headers",
    "header_name",
    "new_checksum",
    "xml_tags",
]

HEADER_PREFIX: Final = "x-amz-checksum-"
ALGORITHMS: Final = ck.ALGORITHMS
Checksum = ck.Hasher
# Header names under the prefix that are not checksum values.
NOT_VALUES: Final = frozenset(
    {"x-amz-checksum-algorithm", "x-amz-checksum-type", "x-amz-checksum-mode"}
)
_XML_NAME: Final = {
    "crc32": "ChecksumCRC32",
    "crc32c": "ChecksumCRC32C",
    "crc64nvme": "ChecksumCRC64NVME",
    "sha1": "ChecksumSHA1",
    "sha256": "ChecksumSHA256",
}
_FROM_XML: Final = {v: k for k, v in _XML_NAME.items()}


def new_checksum(algorithm: str) -> ck.Hasher:
    """A fresh hasher for ``algorithm`` (case-insensitive: ``CRC32``, ``crc64nvme``, ...)."""
    if algorithm.strip().lower() not in ALGORITHMS:
        raise S3Error(
            "InvalidRequest", f"Value for x-amz-checksum-algorithm is invalid: {algorithm}"
        )
    return ck.new_hasher(algorithm)


def header_name(algorithm: str) -> str:
    """``crc32`` -> ``x-amz-checksum-crc32``."""
    return HEADER_PREFIX + algorithm.lower()


def decode_checksum_value(algorithm: str, value: str) -> bytes:
    """Decode and length-check a base64 checksum value sent by the client.

    A value that is not base64 of the right length is the client's malformed input, which S3
    answers with 400 InvalidRequest (a well-formed but wrong value is BadDigest, later).
    """
    alg = algorithm.lower()
    size = ALGORITHMS.get(alg)
    if size is None:
        raise S3Error("InvalidRequest", f"The checksum algorithm {algorithm} is not supported.")
    try:
        raw = base64.b64decode(value.strip(), validate=True)
    except (binascii.Error, ValueError):
        raw = b""
    if len(raw) != size:
        raise S3Error("InvalidRequest", f"Value for {header_name(alg)} header is invalid.")
    return raw


def mismatch(expected: str, actual: str) -> S3Error:
    """S3's error for a part checksum of another algorithm than the upload's (lowercase)."""
    return S3Error(
        "InvalidRequest",
        f"Checksum Type mismatch occurred, expected checksum Type: {expected}, "
        f"actual checksum Type: {actual}",
    )


# --------------------------------------------------------------------------- requests


def create_choice(headers: Mapping[str, str]) -> tuple[str, str] | None:
    """CreateMultipartUpload's ``x-amz-checksum-algorithm`` and ``x-amz-checksum-type``.

    COMPOSITE is the default except for CRC64NVME (FULL_OBJECT only); FULL_OBJECT needs a
    CRC. Errors are S3's InvalidRequest wording for each case.
    """
    raw_alg = headers.get("x-amz-checksum-algorithm")
    raw_type = headers.get("x-amz-checksum-type")
    if raw_alg is None:
        if raw_type is not None:
            raise S3Error(
                "InvalidRequest",
                "The x-amz-checksum-type header can only be used with the "
                "x-amz-checksum-algorithm header.",
            )
        return None
    alg = raw_alg.strip().lower()
    if alg not in ALGORITHMS:
        raise S3Error(
            "InvalidRequest",
            "Checksum algorithm provided is unsupported. Please try again with any of the "
            "valid types: [CRC32, CRC32C, CRC64NVME, SHA1, SHA256]",
        )
    if raw_type is None:
        typ = ck.FULL_OBJECT if alg == "crc64nvme" else ck.COMPOSITE
    else:
        typ = raw_type.strip().upper()
        if typ not in ck.TYPES:
            raise S3Error("InvalidRequest", "Value for x-amz-checksum-type header is invalid.")
    if (typ == ck.FULL_OBJECT and alg not in ck.CRCS) or (
        typ == ck.COMPOSITE and alg == "crc64nvme"
    ):
        raise S3Error(
            "InvalidRequest",
            f"The {typ} checksum type cannot be used with the {alg} checksum algorithm.",
        )
    return alg, typ


def create_headers(choice: tuple[str, str] | None) -> dict[str, str]:
    """CreateMultipartUpload's response headers echoing the upload's checksum choice."""
    if choice is None:
        return {}
    return {"x-amz-checksum-algorithm": choice[0].upper(), "x-amz-checksum-type": choice[1]}


def part_rule(upload_internal: Mapping[str, str], declared: str | None) -> tuple[str | None, bool]:
    """For UploadPart: ``(algorithm the part must be hashed with, store it?)``.

    An upload created with an algorithm stores every part's checksum of that algorithm: a
    part declaring another one is refused, a COMPOSITE upload's part must declare one, a
    FULL_OBJECT upload's part without one is hashed by the server (its CRC is needed for the
    combination). An upload without an algorithm verifies and echoes a part's checksum but
    keeps none (as S3 does).
    """
    choice = ck.upload_choice(upload_internal)
    if choice is None:
        return None, False
    alg, typ = choice
    if declared is not None and declared != alg:
        raise mismatch(alg, declared)
    if declared is None and typ == ck.COMPOSITE:
        raise mismatch(alg, "null")
    return alg, True


def _part_checksum(el: object, number: int) -> tuple[str, str] | None:
    found: list[tuple[str, str]] = []
    for child in el:  # type: ignore[attr-defined]
        alg = _FROM_XML.get(local_name(child))
        if alg is not None and (child.text or "").strip():
            found.append((alg, child.text.strip()))
    if len(found) > 1:
        raise S3Error("InvalidRequest", f"Part {number} lists more than one checksum.")
    if found and ck.b64decode(*found[0]) is None:
        raise S3Error("InvalidPart", f"The {found[0][0]} of part {number} is not valid.")
    return found[0] if found else None


def completion(headers: Mapping[str, str], body: bytes) -> mpck.Completion:
    """What a CompleteMultipartUpload says about checksums: per-part values from the XML
    (already parsed strictly by `multipart_xml.parse_complete_request`), the object's value
    from ``x-amz-checksum-<alg>`` and the mode from ``x-amz-checksum-type``."""
    parts: dict[int, tuple[str, str]] = {}
    for el in parse(body, "CompleteMultipartUpload"):
        number_text = (child_text(el, "PartNumber") or "").strip()
        if not number_text.isdigit():
            raise MalformedXMLError("PartNumber is not a number")
        found = _part_checksum(el, int(number_text))
        if found is not None:
            parts[int(number_text)] = found
    whole = None
    for name in headers:
        lname = name.lower()
        if lname.startswith(HEADER_PREFIX) and lname not in NOT_VALUES:
            alg = lname[len(HEADER_PREFIX) :]
            value = headers[name]
            if alg not in ALGORITHMS or ck.b64decode(alg, value.split("-")[0]) is None:
                raise S3Error("InvalidRequest", f"Value for {lname} header is invalid.")
            whole = (alg, value)
    raw_type = headers.get("x-amz-checksum-type")
    typ = raw_type.strip().upper() if raw_type is not None else None
    if typ is not None and typ not in ck.TYPES:
        raise S3Error("InvalidRequest", "Value for x-amz-checksum-type header is invalid.")
    return mpck.Completion(parts, whole, typ)


# --------------------------------------------------------------------------- responses


def checksum_mode(headers: Mapping[str, str]) -> bool:
    """True when a GET/HEAD asks for checksums (``x-amz-checksum-mode: ENABLED``)."""
    mode = headers.get("x-amz-checksum-mode")
    return mode is not None and mode.strip().upper() == "ENABLED"


def get_headers(
    headers: Mapping[str, str], meta: ObjectMeta, part_number: str | None, ranged: bool
) -> dict[str, str]:
    """The checksum headers of a GET/HEAD response ({} unless checksum mode is enabled).

    A range has no stored checksum (S3 returns none); ``partNumber`` of a multipart object
    returns that part's checksum when the object's is COMPOSITE (or it has one part), since
    the part's own value is what the client can verify against the bytes it receives.
    """
    if not checksum_mode(headers) or ranged:
        return {}
    cs = ck.stored(meta.internal)
    if cs is None:
        return {}
    if part_number is not None and meta.parts:
        index = int(part_number) - 1
        if not 0 <= index < len(meta.parts):
            return {}
        if cs.type == ck.COMPOSITE or len(meta.parts) == 1:
            part = ck.stored(meta.parts[index].internal)
            if part is None:
                return {}
            return {header_name(part.algorithm): part.value, "x-amz-checksum-type": cs.type}
        return {}
    return {header_name(cs.algorithm): cs.shown, "x-amz-checksum-type": cs.type}


def put_headers(cs: ck.Checksum | None) -> dict[str, str]:
    """PutObject's ``x-amz-checksum-type`` for the checksum it stored."""
    return {} if cs is None else {"x-amz-checksum-type": cs.type}


def xml_tags(cs: ck.Checksum | None, *, shown: bool = True, with_type: bool = True) -> list[str]:
    """``<ChecksumCRC32>`` (and ``<ChecksumType>``) elements; ``shown=False`` drops the
    ``-N`` of a composite value (GetObjectAttributes shows it without)."""
    if cs is None:
        return []
    out = [tag(_XML_NAME[cs.algorithm], cs.shown if shown else cs.value)]
    if with_type:
        out.append(tag("ChecksumType", cs.type))
    return out


def part_xml(internal: Mapping[str, str]) -> list[str]:
    """A part's ``<ChecksumX>`` element for ListParts / ObjectParts ([] for none)."""
    return xml_tags(ck.stored(internal), with_type=False)


def upload_xml(internal: Mapping[str, str]) -> list[str]:
    """ListParts' ``<ChecksumAlgorithm>`` and ``<ChecksumType>`` of the upload."""
    choice = ck.upload_choice(internal)
    if choice is None:
        return []
    return [tag("ChecksumAlgorithm", choice[0].upper()), tag("ChecksumType", choice[1])]


def object_xml(internal: Mapping[str, str]) -> list[str]:
    """An object's ``<ChecksumX>`` and ``<ChecksumType>`` (CopyObjectResult, Complete)."""
    return xml_tags(ck.stored(internal))


def copy_algorithm(headers: Mapping[str, str]) -> str | None:
    """CopyObject's ``x-amz-checksum-algorithm`` (lowercase), None when absent."""
    raw = headers.get("x-amz-checksum-algorithm")
    if raw is None:
        return None
    if raw.strip().lower() not in ALGORITHMS:
        raise S3Error("InvalidRequest", "Value for x-amz-checksum-algorithm header is invalid.")
    return raw.strip().lower()


class PartBody(Protocol):
    """What `prepare_part` needs of a request body (`s3.body.RequestBody`)."""

    store_checksum: bool

    @property
    def declared_algorithm(self) -> str | None: ...

    def require(self, algorithm: str) -> None: ...


def prepare_part(upload_internal: Mapping[str, str], body: PartBody) -> None:
    """Set up an UploadPart body by `part_rule` before it is read (errors before any byte)."""
    alg, store = part_rule(upload_internal, body.declared_algorithm)
    if alg is not None:
        body.require(alg)
    body.store_checksum = store
