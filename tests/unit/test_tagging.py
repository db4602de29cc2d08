"""Object and bucket tagging rules and storage, without HTTP: AWS's limits, characters and error
codes for XML tag sets and the ``x-amz-tagging`` header, the canonical stored form, and tag
updates over a real FSBackend and the real master-key KMS, which change only the internal tag
entry (data, ETag and the authenticated layout of an encrypted object stay valid), keep
source tags on copy, apply an upload's tags on completion, and lose a compare-and-swap race
to a concurrent PUT correctly (retried once on the new object, then 409 OperationAborted)."""

from __future__ import annotations

import asyncio
import hashlib
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest

from sealstore.kms.master_key import MasterKeyKMS
from sealstore.objects import layout
from sealstore.objects import tagging as rules
from sealstore.objects.choice import SSE_S3
from sealstore.objects.service import NewObject, ObjectService
from sealstore.objects.tagging import TaggingConflict
from sealstore.s3.errors import s3_error_for
from sealstore.s3.handlers.tagging import parse_tagging, render_tagging
from sealstore.s3.xml import MalformedXMLError, parse
from sealstore.storage import FSBackend, NoSuchKey, ObjectMeta
from sealstore.storage.base import NoSuchVersion, new_version_id
from tests.unit.test_object_service import Body

KMS_VALUE = "tag-key:" + "22" * 32
BUCKET = "bkt"


def refusal(fn: Callable[..., Any], *args: Any, **kwargs: Any) -> tuple[str, int, str]:
    """(code, status, message) the client sees for what ``fn`` raises."""
    with pytest.raises(Exception) as info:
        fn(*args, **kwargs)
    err = s3_error_for(info.value)
    assert err is not None, info.value
    return err.code, err.status, err.message


def simple(n: int) -> list[tuple[str, str]]:
    return [(f"key{i}", f"value{i}") for i in range(n)]


# ----------------------------------------------------------------------------- limits


def test_ten_object_tags_pass_eleven_are_bad_request() -> None:
    assert rules.validate(simple(10)) == tuple(simple(10))
    assert refusal(rules.validate, simple(11)) == (
        "BadRequest",
        400,
        "Object tags cannot be greater than 10",
    )


def test_fifty_bucket_tags_pass_fifty_one_are_bad_request() -> None:
    assert len(rules.validate(simple(50), bucket=True)) == 50
    assert refusal(rules.validate, simple(51), bucket=True) == (
        "BadRequest",
        400,
        "Bucket tag count cannot be greater than 50",
    )


@pytest.mark.parametrize(
    ("tags", "message"),
    [
        ([("k" * 129, "v")], "The TagKey you have provided is invalid"),
        ([("", "v")], "The TagKey you have provided is invalid"),
        ([("k", "v" * 257)], "The TagValue you have provided is invalid"),
        ([("k?", "v")], "The TagKey you have provided is invalid"),
        ([("k", "v*")], "The TagValue you have provided is invalid"),
        ([("k", "a\nb")], "The TagValue you have provided is invalid"),
        ([("k", "\U0001f600")], "The TagValue you have provided is invalid"),  # emoji: So
        # A letter beyond U+FFFF counts two, as S3 counts UTF-16 units: 127 + 2 > 128.
        ([("k" * 127 + "\U00020000", "v")], "The TagKey you have provided is invalid"),
        ([("a", "1"), ("a", "2")], "Cannot provide multiple Tags with the same key"),
        ([("aws:owner", "me")], "Your TagKey cannot be prefixed with aws:"),
    ],
)
def test_invalid_tags_are_invalid_tag(tags: list[tuple[str, str]], message: str) -> None:
    assert refusal(rules.validate, tags) == ("InvalidTag", 400, message)


def test_aws_prefix_on_a_bucket_is_a_system_tag() -> None:
    code, _, message = refusal(rules.validate, [("aws:cloudformation:stack", "x")], bucket=True)
    assert (code, message) == ("InvalidTag", "System tags cannot be added/updated by requester")


def test_the_allowed_repertoire_at_the_limits() -> None:
    tags = [
        ("k" * 128, "v" * 256),
        ("+-=._:/@ x", ""),
        ("\u00e9t\u00e9 \u6771\u4eac \u0661", "\u00c5 \u3000"),  # letters, digits, spaces
        ("AWS:upper", "x"),  # only the lower-case prefix is reserved
        ("k" * 126 + "\U00020000", "v"),  # 126 + 2 = 128 units
    ]
    assert rules.validate(tags) == tuple(tags)


# ----------------------------------------------------------------------------- header


@pytest.mark.parametrize(
    ("header", "tags"),
    [
        ("", ()),
        ("&", ()),
        ("&&&", ()),
        ("key", (("key", ""),)),
        ("key=&", (("key", ""),)),
        ("foo=bar&bar=", (("foo", "bar"), ("bar", ""))),
        ("k1=v1&k2=v2", (("k1", "v1"), ("k2", "v2"))),
        ("a+b=c%20d", (("a b", "c d"),)),
        ("%C3%A9t%C3%A9=%2F%3A", (("\u00e9t\u00e9", "/:"),)),
    ],
)
def test_header_parsing(header: str, tags: tuple[tuple[str, str], ...]) -> None:
    assert rules.parse_header(header) == tags


@pytest.mark.parametrize("header", ["=", "=v", "key%", "k=%zz", "a=1&a=2", "k=%FF", "k=\u00e9"])
def test_malformed_headers_are_invalid_argument(header: str) -> None:
    code, status, message = refusal(rules.parse_header, header)
    assert (code, status, message) == ("InvalidArgument", 400, rules.HEADER_ERROR)


def test_header_tags_follow_the_object_rules() -> None:
    assert refusal(rules.parse_header, "k?=v")[0] == "InvalidTag"
    assert refusal(rules.parse_header, "aws:k=v")[0] == "InvalidTag"
    header = "&".join(f"k{i}=v" for i in range(11))
    assert refusal(rules.parse_header, header)[:2] == ("BadRequest", 400)


def test_canonical_form_round_trips_and_counts() -> None:
    tags = (("a b", "x&y=z"), ("\u20ac/+", ""), ("k%", "%25"))
    text = rules.encode(tags)
    assert text.count("&") == len(tags) - 1  # a "&" or "=" inside a tag is escaped
    assert rules.decode(text) == tags
    assert rules.tag_count({rules.META_TAGGING: text}) == 3
    assert rules.tag_count({}) == 0 and rules.encode(()) == "" and rules.decode("") == ()


# ----------------------------------------------------------------------------- XML


def test_xml_round_trip_with_namespace_and_escapes() -> None:
    body = (
        b'<?xml version="1.0" encoding="UTF-8"?>'
        b'<Tagging xmlns="http://s3.amazonaws.com/doc/2006-03-01/"><TagSet>'
        b"<Tag><Key>a&amp;b</Key><Value> v </Value></Tag>"
        b"<Tag><Key>empty</Key><Value/></Tag>"
        b"</TagSet></Tagging>"
    )
    tags = parse_tagging(body)
    assert tags == [("a&b", " v "), ("empty", "")]
    again = parse_tagging(render_tagging(tuple(tags)))
    assert again == tags


def test_empty_tag_set_renders_and_parses() -> None:
    doc = render_tagging(())
    assert parse(doc, "Tagging")[0].tag.endswith("TagSet")
    assert parse_tagging(b"<Tagging><TagSet/></Tagging>") == []


@pytest.mark.parametrize(
    "body",
    [
        b"<Tagging/>",
        b"<Tagging><TagSet/><TagSet/></Tagging>",
        b"<Tagging><Other/></Tagging>",
        b"<Tagging><TagSet><Tag><Key>k</Key></Tag></TagSet></Tagging>",
        b"<Tagging><TagSet><Tag><Value>v</Value></Tag></TagSet></Tagging>",
        b"<Tagging><TagSet><Tag><Key>k</Key><Key>j</Key><Value/></Tag></TagSet></Tagging>",
        b"<Tagging><TagSet><Tag><Key><b/></Key><Value/></Tag></TagSet></Tagging>",
        b"<Tagging><TagSet><Item/></TagSet></Tagging>",
        b"<Tags><TagSet/></Tags>",
        b"<Tagging><TagSet>",
        b'<!DOCTYPE t [<!ENTITY e "x">]><Tagging><TagSet/></Tagging>',
    ],
)
def test_bad_documents_are_malformed_xml(body: bytes) -> None:
    with pytest.raises(MalformedXMLError):
        parse_tagging(body)


# ----------------------------------------------------------------------------- storage


Scenario = Callable[[ObjectService, FSBackend], Awaitable[Any]]


def run(tmp_path: Path, fn: Scenario, store_cls: type[FSBackend] = FSBackend) -> Any:
    async def main() -> Any:
        async with store_cls(tmp_path) as store:
            await store.create_bucket(BUCKET)
            kms = MasterKeyKMS.from_env_value(KMS_VALUE)
            return await fn(ObjectService(store, kms, auto_encryption=False), store)

    return asyncio.run(main())


async def read(svc: ObjectService, meta: ObjectMeta) -> bytes:
    return b"".join([c async for c in await svc.open(meta, 0, meta.size)])


def test_tag_updates_touch_only_the_tag_entry(tmp_path: Path) -> None:
    data = b"encrypted and tagged" * 1000

    async def fn(svc: ObjectService, store: FSBackend) -> None:
        attrs = NewObject("text/plain", {"x-amz-meta-a": "1"}, tagging=rules.encode([("a", "1")]))
        meta = await svc.put(BUCKET, "k", Body(data), attrs, sse=SSE_S3)
        assert rules.tags_of(meta) == (("a", "1"),)
        tagged = await rules.set_object_tags(store, BUCKET, "k", [("x", "y"), ("z", "")])
        after = await store.head(BUCKET, "k")
        assert rules.tags_of(after) == (("x", "y"), ("z", ""))
        assert (after.etag, after.size, after.files, after.last_modified) == (
            meta.etag,
            meta.size,
            meta.files,
            meta.last_modified,
        )
        assert after.user_meta == {"x-amz-meta-a": "1"}
        assert rules.with_tagging(after.internal, "") == rules.with_tagging(meta.internal, "")
        assert tagged.internal == after.internal
        assert (await svc.verify(after)).state is layout.LayoutState.VERIFIED
        assert await read(svc, after) == data
        await rules.set_object_tags(store, BUCKET, "k", ())
        assert rules.META_TAGGING not in (await store.head(BUCKET, "k")).internal
        with pytest.raises(NoSuchKey):
            await rules.set_object_tags(store, BUCKET, "absent", [("a", "b")])

    run(tmp_path, fn)


def test_tagging_addresses_the_null_version_and_unknown_versions_are_no_such_version(
    tmp_path: Path,
) -> None:
    async def fn(svc: ObjectService, store: FSBackend) -> None:
        await svc.put(BUCKET, "k", Body(b"x"), NewObject("text/plain"), sse=None)
        assert (await rules.tagged_object(store, BUCKET, "k", "null")).key == "k"
        with pytest.raises(NoSuchVersion):
            await rules.tagged_object(store, BUCKET, "k", new_version_id())

    run(tmp_path, fn)


def test_copy_keeps_or_replaces_tags_and_uploads_apply_theirs(tmp_path: Path) -> None:
    async def fn(svc: ObjectService, store: FSBackend) -> None:
        src = await svc.put(
            BUCKET, "src", Body(b"s"), NewObject("text/plain", tagging="a=1"), sse=None
        )
        kept = await svc.copy(src, BUCKET, "kept", attrs=None, sse=None)
        assert rules.tags_of(kept) == (("a", "1"),)
        replaced = await svc.copy(
            src, BUCKET, "new", attrs=NewObject("text/plain", tagging="b=2"), sse=SSE_S3
        )
        assert rules.tags_of(replaced) == (("b", "2"),)
        upload = await svc.create_upload(
            BUCKET, "mp", NewObject("text/plain", tagging="c=3"), sse=SSE_S3
        )
        part = await svc.put_part(upload, 1, Body(b"part"), max_size=1 << 20)
        done = await svc.complete(upload, [(1, part.etag)])
        assert rules.tags_of(await store.head(BUCKET, "mp")) == (("c", "3"),)
        assert (await svc.verify(done)).state is layout.LayoutState.VERIFIED

    run(tmp_path, fn)


class RacingStore(FSBackend):
    """A real FSBackend in which a client PUT replaces the object right before each of the
    first ``races`` tag compare-and-swaps, as a concurrent request would."""

    races = 1

    async def update_internal(self, meta: ObjectMeta, internal: dict[str, str]) -> ObjectMeta:
        if self.races > 0:
            self.races -= 1
            writer = await self.new_writer(meta.bucket, meta.key)
            async with writer:
                await writer.write(b"newer")
                etag = hashlib.md5(b"newer", usedforsecurity=False).hexdigest()
                await writer.commit(ObjectMeta(meta.bucket, meta.key, size=5, etag=etag))
        return await super().update_internal(meta, internal)


def test_a_lost_race_is_retried_on_the_new_object(tmp_path: Path) -> None:
    async def fn(svc: ObjectService, store: FSBackend) -> None:
        await svc.put(BUCKET, "k", Body(b"old"), NewObject("text/plain"), sse=None)
        await rules.set_object_tags(store, BUCKET, "k", [("t", "1")])
        meta = await store.head(BUCKET, "k")
        assert meta.size == 5 and rules.tags_of(meta) == (("t", "1"),)

    run(tmp_path, fn, RacingStore)


def test_two_lost_races_are_operation_aborted(tmp_path: Path) -> None:
    class Busy(RacingStore):
        races = 2

    async def fn(svc: ObjectService, store: FSBackend) -> None:
        await svc.put(BUCKET, "k", Body(b"old"), NewObject("text/plain"), sse=None)
        with pytest.raises(TaggingConflict) as info:
            await rules.set_object_tags(store, BUCKET, "k", [("t", "1")])
        err = s3_error_for(info.value)
        assert err is not None and (err.code, err.status) == ("OperationAborted", 409)
        assert rules.tags_of(await store.head(BUCKET, "k")) == ()

    run(tmp_path, fn, Busy)
