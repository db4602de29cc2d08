"""post_form: reading a POST form's fields (20 KiB cap across fields and part headers,
lower-cased names, duplicates and a missing file refused, framing errors as
MalformedPOSTRequest) and FileBody (MD5, checksum fields, content-length-range raised from
inside the iteration so the object service never commits)."""

from __future__ import annotations

import asyncio
import base64
import hashlib

import pytest

from sealstore.s3.errors import S3Error
from sealstore.s3.form_data import FormReader
from sealstore.s3.post_form import FileBody, form_checksums, read_fields
from sealstore.s3.post_policy import PostPolicy
from tests.unit.test_form_data import BOUNDARY, Chunks, form


def reader(body: bytes, sizes: int = 7) -> FormReader:
    return FormReader(Chunks(body, sizes), BOUNDARY)


def code(coro) -> str:
    with pytest.raises(S3Error) as exc:
        asyncio.run(coro)
    return exc.value.code


async def upload(r: FormReader, **kwargs) -> tuple[bytes, FileBody]:
    body = FileBody(r.stream(), **kwargs)
    return b"".join([piece async for piece in body]), body


def test_fields_then_file() -> None:
    body = form(
        ("Key", b"a/${filename}", None),
        ("X-Amz-Meta-A", b"1", None),
        ("file", b"data", "f.txt"),
        ("after", b"ignored", None),
    )

    async def go():
        r = reader(body)
        parsed = await read_fields(r)
        data, fb = await upload(r)
        return parsed, data, fb

    parsed, data, fb = asyncio.run(go())
    assert parsed.fields == {"key": "a/${filename}", "x-amz-meta-a": "1"}
    assert parsed.filename == "f.txt"
    assert data == b"data" and fb.md5_hex == hashlib.md5(b"data").hexdigest()


@pytest.mark.parametrize(
    ("body", "want"),
    [
        (form(("a", b"1", None)), "IncorrectNumberOfFilesInPostRequest"),
        (form(("a", b"1", None), ("A", b"2", None), ("file", b"", "f")), "InvalidArgument"),
        (
            form(("a", b"v" * (20 * 1024), None), ("file", b"", "f")),
            "MaxPostPreDataLengthExceededError",
        ),
        # many small fields add up, part headers included
        (
            form(*[(f"x-ignore-{i}", b"v" * 100, None) for i in range(150)], ("file", b"", "f")),
            "MaxPostPreDataLengthExceededError",
        ),
        (form(("a", b"\xff", None), ("file", b"", "f")), "MalformedPOSTRequest"),
        (form(("a", b"1", None), close=False), "MalformedPOSTRequest"),
    ],
)
def test_refused_forms(body: bytes, want: str) -> None:
    assert code(read_fields(reader(body))) == want


def test_file_body_limits_and_checksums() -> None:
    policy = PostPolicy(expiration=None, conditions=(), min_size=2, max_size=10)  # type: ignore[arg-type]
    data = b"0123456789"

    async def run(payload: bytes, **kwargs):
        r = reader(form(("file", payload, "f")), 3)
        await read_fields(r)
        return await upload(r, **kwargs)

    got, _ = asyncio.run(run(data, check_size=policy.check_size))
    assert got == data
    assert code(run(data + b"x", check_size=policy.check_size)) == "EntityTooLarge"
    assert code(run(b"x", check_size=policy.check_size)) == "EntityTooSmall"
    assert code(run(data, max_size=9)) == "EntityTooLarge"

    sha = hashlib.sha256(data).digest()
    _, fb = asyncio.run(run(data, expected={"sha256": sha}))
    assert fb.checksums == {"x-amz-checksum-sha256": base64.b64encode(sha).decode()}
    assert code(run(data, expected={"sha256": hashlib.sha256(b"no").digest()})) == "BadDigest"


def test_form_checksums() -> None:
    value = base64.b64encode(hashlib.sha256(b"x").digest()).decode()
    assert form_checksums({"x-amz-checksum-sha256": value, "x-amz-checksum-algorithm": "SHA256"})
    with pytest.raises(S3Error) as bad:
        form_checksums({"x-amz-checksum-sha256": "short"})
    assert bad.value.code == "InvalidRequest"
    with pytest.raises(S3Error) as two:
        crc = base64.b64encode(b"\0\0\0\0").decode()
        form_checksums({"x-amz-checksum-sha256": value, "x-amz-checksum-crc32": crc})
    assert two.value.code == "InvalidRequest"
