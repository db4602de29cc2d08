"""Object and bucket tags: AWS S3's rules, one canonical stored form, metadata-only updates.

Why tags live where they do: an object's tag set is one internal entry,
``X-Sealstore-Internal-Tagging``, holding the tags in a canonical URL-encoded query form
(``k1=v1&k2=v2``, every byte outside ``[A-Za-z0-9_.~-]`` percent-encoded, in the order the
client gave them). Internal entries are never returned as headers (`metadata.strip_internal`),
so a tag can never be mistaken for ``x-amz-meta-*`` user metadata, and they are not bound by
the authenticated layout (`objects/layout.py` binds size, ETag, parts and stream nonces only),
so changing tags never disturbs layout verification. Changing them needs no data rewrite: the
store's compare-and-swap `Store.update_internal` replaces the entries of exactly the object
that was read (`set_object_tags`); a concurrent PUT or delete wins and the update is retried
once on the fresh object, then answered with S3's 409 ``OperationAborted``, the code AWS
documents for PutObjectTagging racing a conflicting operation.

Bucket tags are the same canonical text, stored as the bucket configuration kind
``"tagging"`` (`Store.put_bucket_config`).

The rules are AWS's (its error codes and messages, checked against S3's answers as reported by
its users and by S3-compatible test suites): at most 10 tags per object (``BadRequest``) and 50
per bucket; a key of 1..128 and a value of 0..256 characters, counted as UTF-16 code units as
S3 counts them; letters, digits, white space and ``+ - = . _ : / @`` only (``InvalidTag``);
unique keys; the ``aws:`` prefix reserved for the system.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Mapping, Sequence
from urllib.parse import quote, unquote

from sealstore.objects import metadata as md
from sealstore.objects.errors import ObjectError
from sealstore.objects.versions import readable
from sealstore.storage.base import ObjectChanged, ObjectMeta
from sealstore.storage.contract import Store

META_TAGGING = "X-Sealstore-Internal-Tagging"
BUCKET_TAGGING_CONFIG = "tagging"
MAX_OBJECT_TAGS = 10
MAX_BUCKET_TAGS = 50
MAX_KEY_LENGTH = 128
MAX_VALUE_LENGTH = 256
RESERVED_PREFIX = "aws:"
_PUNCTUATION = frozenset("+-=._:/@")
_ESCAPE = re.compile(r"%(?![0-9A-Fa-f]{2})")
HEADER_ERROR = (
    "The header 'x-amz-tagging' shall be encoded as UTF-8 then URLEncoded URL query "
    "parameters without tag name duplicates."
)

Tag = tuple[str, str]


class TaggingError(ObjectError):
    """A tag set S3 refuses; ``code`` is AWS's code for that case (InvalidTag, BadRequest,
    InvalidArgument for a malformed ``x-amz-tagging`` header, NoSuchVersion)."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code


class TaggingConflict(ObjectError):
    """The object kept changing under a tag update (two compare-and-swap attempts lost)."""

    code = "OperationAborted"


def _length(text: str) -> int:
    """Length as S3 counts it: UTF-16 code units (two for a character beyond U+FFFF)."""
    return len(text) + sum(1 for ch in text if ord(ch) > 0xFFFF)


def _allowed(ch: str) -> bool:
    category = unicodedata.category(ch)
    return category[0] in "LNZ" or ch in _PUNCTUATION


def _valid_text(text: str, minimum: int, maximum: int) -> bool:
    return minimum <= _length(text) <= maximum and all(_allowed(ch) for ch in text)


def validate(tags: Sequence[Tag], *, bucket: bool = False) -> tuple[Tag, ...]:
    """Check a tag set against S3's rules (object rules, or the bucket's with ``bucket``);
    return it as a tuple, or raise TaggingError with AWS's code and message."""
    if bucket and len(tags) > MAX_BUCKET_TAGS:
        raise TaggingError("BadRequest", "Bucket tag count cannot be greater than 50")
    if not bucket and len(tags) > MAX_OBJECT_TAGS:
        raise TaggingError("BadRequest", "Object tags cannot be greater than 10")
    seen: set[str] = set()
    for key, value in tags:
        if not _valid_text(key, 1, MAX_KEY_LENGTH):
            raise TaggingError("InvalidTag", "The TagKey you have provided is invalid")
        if not _valid_text(value, 0, MAX_VALUE_LENGTH):
            raise TaggingError("InvalidTag", "The TagValue you have provided is invalid")
        if key in seen:
            raise TaggingError("InvalidTag", "Cannot provide multiple Tags with the same key")
        seen.add(key)
    if any(key.startswith(RESERVED_PREFIX) for key in seen):
        if bucket:
            raise TaggingError("InvalidTag", "System tags cannot be added/updated by requester")
        raise TaggingError("InvalidTag", "Your TagKey cannot be prefixed with aws:")
    return tuple(tags)


def _unescape(part: str) -> str:
    """Strict query unescaping (``+`` is a space): a stray ``%`` or bytes that are not
    UTF-8 make the header malformed rather than being kept literally."""
    if _ESCAPE.search(part):
        raise TaggingError("InvalidArgument", HEADER_ERROR)
    try:
        return unquote(part.replace("+", " "), errors="strict")
    except UnicodeDecodeError:
        raise TaggingError("InvalidArgument", HEADER_ERROR) from None


def parse_header(value: str | None) -> tuple[Tag, ...]:
    """The tag set of an ``x-amz-tagging`` header (``k1=v1&k2``: a missing ``=`` is an empty
    value, empty pairs are skipped), validated with the object rules. An empty key, a bad
    escape, raw non-ASCII or a repeated key: InvalidArgument, as S3 answers."""
    if not value:
        return ()
    if not value.isascii():
        raise TaggingError("InvalidArgument", HEADER_ERROR)
    tags: list[Tag] = []
    seen: set[str] = set()
    for part in value.split("&"):
        if not part:
            continue
        raw_key, _, raw_value = part.partition("=")
        key, text = _unescape(raw_key), _unescape(raw_value)
        if not key or key in seen:
            raise TaggingError("InvalidArgument", HEADER_ERROR)
        seen.add(key)
        tags.append((key, text))
    return validate(tags)


def encode(tags: Sequence[Tag]) -> str:
    """The canonical stored form of a (validated) tag set; "" for no tags."""
    return "&".join(f"{quote(k, safe='')}={quote(v, safe='')}" for k, v in tags)


def decode(text: str | None) -> tuple[Tag, ...]:
    """The tag set of a stored canonical form (written by `encode`)."""
    if not text:
        return ()
    out: list[Tag] = []
    for part in text.split("&"):
        key, _, value = part.partition("=")
        out.append((unquote(key), unquote(value)))
    return tuple(out)


def stored_tagging(internal: Mapping[str, str]) -> str:
    """The canonical tag text of an object's internal entries ("" when untagged)."""
    return md.ci_get(internal, META_TAGGING) or ""


def tags_of(meta: ObjectMeta) -> tuple[Tag, ...]:
    """The object's tag set, in the order it was given."""
    return decode(stored_tagging(meta.internal))


def tag_count(internal: Mapping[str, str]) -> int:
    """How many tags the object has (``x-amz-tagging-count``), without decoding them."""
    text = stored_tagging(internal)
    return text.count("&") + 1 if text else 0


def tag_entry(text: str) -> dict[str, str]:
    """The internal entry a new object or upload stores for the tag text ({} for none)."""
    return {META_TAGGING: text} if text else {}


def with_tagging(internal: Mapping[str, str], text: str) -> dict[str, str]:
    """``internal`` with the tag entry replaced by ``text`` (removed when empty)."""
    out = {k: v for k, v in internal.items() if k.lower() != META_TAGGING.lower()}
    if text:
        out[META_TAGGING] = text
    return out


async def tagged_object(
    store: Store, bucket: str, key: str, version_id: str | None = None
) -> ObjectMeta:
    """The object a tagging request addresses: the current one, or the version ``version_id``
    names (``null`` for the null version; validated by the handler). A delete marker has no
    tags: S3 answers 405 MethodNotAllowed for one named by id (`versions.readable`)."""
    return readable(await store.head(bucket, key, version_id))


async def set_object_tags(
    store: Store,
    bucket: str,
    key: str,
    tags: Sequence[Tag],
    *,
    version_id: str | None = None,
) -> ObjectMeta:
    """Replace the object's tag set (an empty one removes it) without touching its data.

    A compare-and-swap against the object just read: if a PUT, copy or delete replaced it
    meanwhile, the new object is read and tagged once more; a second loss is
    TaggingConflict (409 OperationAborted). NoSuchKey when the object is gone."""
    text = encode(tags)
    for _ in range(2):
        meta = await tagged_object(store, bucket, key, version_id)
        if stored_tagging(meta.internal) == text:
            return meta
        try:
            return await store.update_internal(meta, with_tagging(meta.internal, text))
        except ObjectChanged:
            continue
    raise TaggingConflict(
        "A conflicting operation changed the object while its tags were being set; try again."
    )
