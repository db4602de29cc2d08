"""Conditional-write headers and checks: `preconditions.write_condition` reads If-None-Match /
If-Match as S3 does (only ``*`` for If-None-Match, else 501 NotImplemented), and
`WriteCondition.holds` / `conditional.precheck` decide 412 PreconditionFailed vs 404 NoSuchKey
against a real FSBackend."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
from multidict import CIMultiDict

from sealstore.objects.conditional import PreconditionFailed, precheck
from sealstore.s3.errors import S3Error, s3_error_for
from sealstore.s3.handlers.preconditions import write_condition
from sealstore.storage.base import NoSuchKey, ObjectMeta
from sealstore.storage.conditions import WriteCondition
from sealstore.storage.fs import FSBackend


def test_write_condition_headers() -> None:
    assert write_condition(CIMultiDict()) is None
    assert write_condition(CIMultiDict({"If-None-Match": "*"})) == WriteCondition(absent=True)
    assert write_condition(CIMultiDict({"if-none-match": " * "})) == WriteCondition(absent=True)
    assert write_condition(CIMultiDict({"If-Match": '"abc"'})) == WriteCondition(etag='"abc"')
    for value in ('"abc"', "abc", "*,*", ""):
        with pytest.raises(S3Error) as ei:
            write_condition(CIMultiDict({"If-None-Match": value}))
        assert (ei.value.code, ei.value.status) == ("NotImplemented", 501)
        assert ei.value.extra == {"Header": "If-None-Match"}


def test_holds() -> None:
    etag = "0123456789abcdef0123456789abcdef"
    assert WriteCondition(absent=True).holds(None)
    assert not WriteCondition(absent=True).holds(etag)
    assert not WriteCondition(etag=etag).holds(None)
    assert WriteCondition(etag=f'"{etag.upper()}"').holds(etag)
    assert not WriteCondition(etag="ffff").holds(etag)
    assert WriteCondition(etag="*").holds(etag) and not WriteCondition(etag="*").holds(None)


def test_precheck_answers(tmp_path: Path) -> None:
    async def run() -> None:
        async with FSBackend(tmp_path / "d") as store:
            await store.create_bucket("bkt")
            await precheck(store, "bkt", "k", None)
            await precheck(store, "bkt", "k", WriteCondition(absent=True))
            with pytest.raises(NoSuchKey):  # If-Match on a missing key: 404, as S3
                await precheck(store, "bkt", "k", WriteCondition(etag="abc"))
            async with await store.new_writer("bkt", "k") as w:
                await w.write(b"x")
                meta = await w.commit(
                    ObjectMeta("bkt", "k", size=1, etag="9dd4e461268c8034f5c8564e155c67a6")
                )
            with pytest.raises(PreconditionFailed) as ei:
                await precheck(store, "bkt", "k", WriteCondition(absent=True))
            err = s3_error_for(ei.value)
            assert err is not None and (err.code, err.status) == ("PreconditionFailed", 412)
            with pytest.raises(PreconditionFailed):
                await precheck(store, "bkt", "k", WriteCondition(etag="ffff"))
            await precheck(store, "bkt", "k", WriteCondition(etag=f'"{meta.etag}"'))

    asyncio.run(run())
