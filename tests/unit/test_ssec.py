"""SSE-C: the customer-key headers are checked in AWS's order with AWS's codes (s3-tests'
keys as vectors), the sealed object key is MinIO's bytes (re-derived here independently with
hmac + AES-GCM over the DARE 2.0 package), and the object service over a real FSBackend
serves SSE-C objects: no KMS needed, wrong key 403, missing key or key for a non-SSE-C object
400, per-part keys that every part must repeat, the authenticated layout, key rotation by a
copy onto itself, and a customer key that appears in no stored entry."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import os
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from multidict import CIMultiDict

from sealstore.crypto import keys
from sealstore.kms.master_key import MasterKeyKMS
from sealstore.objects import layout, ssec
from sealstore.objects import metadata as md
from sealstore.objects.choice import CustomerKey, customer_choice
from sealstore.objects.errors import CustomerKeyMismatch, InvalidRequest
from sealstore.objects.service import ObjectService
from sealstore.s3 import sse_headers as sh
from sealstore.s3.errors import S3Error
from sealstore.storage import FSBackend
from sealstore.storage.base import MIN_PART_SIZE
from tests.unit.test_object_service import ATTRS, BUCKET, KMS_VALUE, Body, read

# ceph s3-tests' two keys and their MD5s
KEY_A = "pO3upElrwuEXSoFwCfnZPdSsmt/xWeFa0N9KgDijwVs="
MD5_A = "DWygnHRtgiJ77HCm+1rvHw=="
KEY_B = "6b+WOZ1T3cqZMxgThRcXAQBrS5mXKdDUphvpxptl9/4="
MD5_B = "arxBvwY2V4SiOne6yppVPQ=="
A = CustomerKey(base64.b64decode(KEY_A), MD5_A)
B = CustomerKey(base64.b64decode(KEY_B), MD5_B)


def trio(alg: str | None = "AES256", key: str | None = KEY_A, md5: str | None = MD5_A):
    names = sh.SSEC_HEADERS
    return CIMultiDict({n: v for n, v in zip(names, (alg, key, md5), strict=True) if v is not None})


def error(fn: Any, *args: Any, **kw: Any) -> S3Error:
    with pytest.raises(S3Error) as ei:
        fn(*args, **kw)
    return ei.value


# ------------------------------------------------------------------------- headers


def test_the_s3_tests_keys_parse_to_their_md5() -> None:
    assert sh.customer_key(trio()) == A
    assert sh.customer_key(trio(key=KEY_B, md5=MD5_B)) == B
    assert sh.customer_key(CIMultiDict()) is None
    assert KEY_A not in repr(A) and "key=" not in repr(A)  # only the MD5 is ever shown


@pytest.mark.parametrize(
    ("headers", "code", "message"),
    [
        (trio(alg=None), "InvalidArgument", sh.NO_ALGORITHM),
        (trio(alg=None, key=None), "InvalidArgument", sh.NO_ALGORITHM),
        (trio(alg="AES512"), "InvalidEncryptionAlgorithmError", sh.BAD_ALGORITHM),
        (trio(key=None), "InvalidArgument", sh.NO_KEY),
        (trio(md5=None), "InvalidArgument", sh.NO_MD5),
        (trio(md5="AAAAAAAAAAAAAAAAAAAAAA=="), "InvalidArgument", sh.MD5_MISMATCH),
        (trio(key="not base64!"), "InvalidArgument", sh.INVALID_KEY),
        # a 24-byte key: the MD5 is checked first, then the length (AWS's order)
        (trio(key=base64.b64encode(b"7" * 24).decode()), "InvalidArgument", sh.MD5_MISMATCH),
        (
            trio(
                key=base64.b64encode(b"7" * 24).decode(),
                md5=base64.b64encode(hashlib.md5(b"7" * 24).digest()).decode(),
            ),
            "InvalidArgument",
            sh.INVALID_KEY,
        ),
    ],
)
def test_bad_customer_keys_get_aws_answers(headers: CIMultiDict[str], code: str, message: str):
    err = error(sh.customer_key, headers)
    assert (err.code, err.status, err.message) == (code, 400, message)
    assert err.extra["ArgumentName"] == "x-amz-server-side-encryption"
    assert KEY_A not in err.message and KEY_A not in str(err.extra)


def test_copy_source_keys_are_read_from_their_own_headers() -> None:
    src = CIMultiDict(zip(sh.SSEC_COPY_HEADERS, ("AES256", KEY_B, MD5_B), strict=True))
    assert sh.customer_key(src, copy_source=True) == B
    assert sh.customer_key(src) is None
    src[sh.SSEC_COPY_HEADERS[2]] = MD5_A
    err = error(sh.customer_key, src, copy_source=True)
    assert err.extra["ArgumentName"] == "x-amz-copy-source-server-side-encryption"


def test_plain_http_is_refused_before_anything_else() -> None:
    err = error(sh.customer_key, trio(alg="nonsense"), secure=False)
    assert (err.code, err.status, err.message) == ("InvalidRequest", 400, sh.INSECURE)
    assert sh.customer_key(CIMultiDict(), secure=False) is None


def test_requested_sse_with_ssec() -> None:
    assert sh.requested_sse(trio()) == customer_choice(A)
    both = trio()
    both["x-amz-server-side-encryption"] = "AES256"
    err = error(sh.requested_sse, both)
    assert (err.code, err.message) == ("InvalidArgument", sh.INCOMPATIBLE)
    assert err.extra == {"ArgumentName": "x-amz-server-side-encryption", "ArgumentValue": "AES256"}
    with_kms_id = trio()
    with_kms_id[sh.SSE_KMS_KEY_ID_HEADER] = "k"
    assert error(sh.requested_sse, with_kms_id).message == sh.KMS_REQUIRED


def test_ssec_response_headers_echo_the_presented_md5_only() -> None:
    _, internal = ssec.new_object_key(A, "b", "o")
    assert sh.sse_response_headers(internal, A) == {
        sh.SSEC_ALGORITHM_RESPONSE: "AES256",
        sh.SSEC_MD5_RESPONSE: MD5_A,
    }
    assert sh.sse_response_headers(internal) == {}  # never SSE-S3's header for SSE-C


# ------------------------------------------------------------------------- MinIO format


def _dare_open(key: bytes, package: bytes) -> bytes:
    """Independent DARE 2.0 single-package decryption (header, AES-GCM, seq 0, final)."""
    header, body = package[:16], package[16:]
    assert header[0] == 0x20 and header[1] == 0x00 and header[4] & 0x80  # v2, AES, final
    return AESGCM(key).decrypt(header[4:16], body, header[:4])


def test_sealed_key_is_minios_bytes() -> None:
    oek, internal = ssec.new_object_key(A, "bucket", "dir/object")
    assert set(internal) == {
        "X-Minio-Internal-Server-Side-Encryption-Seal-Algorithm",
        "X-Minio-Internal-Server-Side-Encryption-Iv",
        "X-Minio-Internal-Server-Side-Encryption-Sealed-Key",
        md.META_FORMAT_VERSION,
    }
    assert internal["X-Minio-Internal-Server-Side-Encryption-Seal-Algorithm"] == (
        "DAREv2-HMAC-SHA256"
    )
    iv = base64.b64decode(internal["X-Minio-Internal-Server-Side-Encryption-Iv"])
    sealed = base64.b64decode(internal["X-Minio-Internal-Server-Side-Encryption-Sealed-Key"])
    assert len(iv) == 32 and len(sealed) == 64
    msg = iv + b"SSE-C" + b"DAREv2-HMAC-SHA256" + b"bucket/dir/object"
    kek = hmac.new(A.key, msg, hashlib.sha256).digest()
    assert _dare_open(kek, sealed) == oek
    for value in internal.values():  # neither the key nor its MD5 is stored
        assert KEY_A not in value and MD5_A not in value and A.key.hex() not in value


@pytest.mark.parametrize(
    ("oek", "number", "want"),
    [  # MinIO's published part-key vectors (cmd/crypto key tests, 2018 and 2019)
        (bytes(32), 0, "aa7855e13839dd767cd5da7c1ff5036540c9264b7a803029315e55375287b4af"),
        (bytes(32), 1, "a3e7181c6eed030fd52f79537c56c4d07da92e56d374ff1dd2043350785b37d8"),
        (bytes(32), 10000, "f86e65c396ed52d204ee44bd1a0bbd86eb8b01b7354e67a3b3ae0e34dd5bd115"),
        (
            bytes.fromhex("b997f84afa94eb4482953512c98a5850d85dd5ad1cac483ad69ef073915ab3f5"),
            2,
            "29a689195c35bb4f2687b3e0e92740456f7ae635bcd345302d5f001bd78197bc",
        ),
    ],
)
def test_part_keys_match_minio_vectors(oek: bytes, number: int, want: str) -> None:
    """SSE-C multipart parts are encrypted under MinIO's part keys."""
    assert keys.derive_part_key(oek, number).hex() == want


def test_a_minio_sealed_key_opens_and_another_key_or_path_does_not() -> None:
    oek = bytes(range(32))
    iv = bytes(range(32, 64))
    sealed = keys.seal_object_key(oek, A.key, md.DOMAIN_SSE_C, "bucket", "obj", iv=iv)
    internal = {
        md.META_SEAL_ALGORITHM: sealed.algorithm,
        md.META_IV: base64.b64encode(iv).decode(),
        md.META_SSEC_SEALED_KEY: base64.b64encode(sealed.key).decode(),
    }
    assert ssec.open_object_key(internal, "bucket", "obj", A) == oek
    with pytest.raises(CustomerKeyMismatch):
        ssec.open_object_key(internal, "bucket", "obj", B)
    with pytest.raises(CustomerKeyMismatch):
        ssec.open_object_key(internal, "bucket", "other", A)
    with pytest.raises(InvalidRequest, match="did not match the ones used originally"):
        ssec.open_upload_key(internal, "bucket", "obj", B)


def test_read_and_part_key_rules() -> None:
    _, internal = ssec.new_object_key(A, "b", "o")
    ssec.require_read_key(internal, A)
    with pytest.raises(InvalidRequest, match="stored using a form of Server Side Encryption"):
        ssec.require_read_key(internal, None)
    with pytest.raises(InvalidRequest, match="not applicable to this object"):
        ssec.require_read_key({md.META_S3_SEALED_KEY: "x"}, A)
    with pytest.raises(InvalidRequest, match="Subsequent part requests must include"):
        ssec.require_part_key(internal, None)
    with pytest.raises(InvalidRequest, match="Subsequent part requests must include"):
        ssec.require_part_key({}, A)


# ------------------------------------------------------------------------- object service


def run(tmp_path: Path, fn: Any, *, kms: bool = False) -> Any:
    async def main() -> Any:
        the_kms = MasterKeyKMS.from_env_value(KMS_VALUE) if kms else None
        async with FSBackend(tmp_path) as store:
            await store.create_bucket(BUCKET)
            return await fn(ObjectService(store, the_kms, auto_encryption=False), store)

    return asyncio.run(main())


def test_put_get_without_any_kms(tmp_path: Path) -> None:
    data = os.urandom(200_000)

    async def fn(svc: ObjectService, store: FSBackend) -> None:
        meta = await svc.put(BUCKET, "k", Body(data), ATTRS, sse=customer_choice(A))
        assert md.sse_kind(meta.internal) == md.DOMAIN_SSE_C
        assert meta.etag != hashlib.md5(data).hexdigest() and len(meta.etag) == 32
        meta = await svc.head(BUCKET, "k")
        assert await read_c(svc, meta, A) == data
        assert await read_c(svc, meta, A, 70_000, 100_000) == data[70_000:170_000]
        assert (await svc.verify(meta, A)).state is layout.LayoutState.VERIFIED
        with pytest.raises(CustomerKeyMismatch):
            await svc.open(meta, 0, 10, B)
        with pytest.raises(InvalidRequest):
            await svc.open(meta, 0, 10)
        raw = b"".join([c async for c in store.read(meta)])
        assert data[:64] not in raw

    run(tmp_path, fn)


async def read_c(svc: ObjectService, meta: Any, key: CustomerKey, off: int = 0, n: int = -1):
    n = meta.size - off if n < 0 else n
    return b"".join([c async for c in await svc.open(meta, off, n, key)])


def test_rotation_and_copies(tmp_path: Path) -> None:
    data = os.urandom(100_000)

    async def fn(svc: ObjectService, store: FSBackend) -> None:
        meta = await svc.put(BUCKET, "k", Body(data), ATTRS, sse=customer_choice(A))
        rotated = await svc.copy(
            meta, BUCKET, "k", attrs=None, sse=customer_choice(B), src_customer=A
        )
        assert await read_c(svc, rotated, B) == data
        with pytest.raises(CustomerKeyMismatch):
            await svc.open(rotated, 0, 1, A)
        # without a new customer key the copy drops SSE-C: SSE-S3 when a KMS exists
        plain = await svc.copy(rotated, BUCKET, "p", attrs=None, sse=None, src_customer=B)
        assert md.sse_kind(plain.internal) == md.DOMAIN_SSE_S3
        assert plain.etag == hashlib.md5(data).hexdigest()
        assert await read(svc, plain) == data
        back = await svc.copy(plain, BUCKET, "c", attrs=None, sse=customer_choice(A))
        assert await read_c(svc, back, A) == data

    run(tmp_path, fn, kms=True)


def test_multipart_parts_repeat_the_key(tmp_path: Path) -> None:
    p1, p2 = os.urandom(MIN_PART_SIZE), os.urandom(1000)

    async def fn(svc: ObjectService, store: FSBackend) -> None:
        up = await svc.create_upload(BUCKET, "m", ATTRS, sse=customer_choice(A))
        assert ssec.is_ssec(up.meta.internal)
        with pytest.raises(InvalidRequest, match="Subsequent part requests"):
            await svc.put_part(up, 1, Body(p1), max_size=1 << 30)
        with pytest.raises(InvalidRequest, match="did not match the ones used originally"):
            await svc.put_part(up, 1, Body(p1), max_size=1 << 30, customer=B)
        e1 = await svc.put_part(up, 1, Body(p1), max_size=1 << 30, customer=A)
        e2 = await svc.put_part(up, 2, Body(p2), max_size=1 << 30, customer=A)
        assert e2.etag != hashlib.md5(p2).hexdigest() and len(e2.etag) == 32  # no plaintext MD5
        obj = await svc.complete(up, [(1, e1.etag), (2, e2.etag)], A)
        meta = await svc.head(BUCKET, "m")
        assert meta.etag == obj.etag and len(meta.parts) == 2
        assert (await svc.verify(meta, A)).state is layout.LayoutState.VERIFIED
        whole = p1 + p2
        assert await read_c(svc, meta, A) == whole
        assert await read_c(svc, meta, A, MIN_PART_SIZE - 10, 20) == whole[-1010:-990]
        # an UploadPartCopy from the SSE-C object into a plain upload
        up2 = await svc.create_upload(BUCKET, "n", ATTRS, sse=None)
        with pytest.raises(InvalidRequest):
            await svc.copy_part(up2, 1, meta, 0, 10)
        part = await svc.copy_part(up2, 1, meta, 5, 10, src_customer=A)
        assert part.etag == hashlib.md5(whole[5:15]).hexdigest()

    run(tmp_path, fn)


def test_admin_checks_leave_ssec_objects_and_uploads_alone(tmp_path: Path) -> None:
    from sealstore.objects import maintenance

    async def fn(svc: ObjectService, store: FSBackend) -> None:
        meta = await svc.put(BUCKET, "k", Body(b"x" * 10), ATTRS, sse=customer_choice(A))
        check = await maintenance.check_object(store, svc.kms, meta, deep=True)
        assert (check.problem, check.layout) == (None, "customer-key")
        up = await svc.create_upload(BUCKET, "u", ATTRS, sse=customer_choice(A))
        assert (await maintenance.check_upload(svc.kms, up)).problem is None

    run(tmp_path, fn, kms=True)


def test_insecure_ssec_setting() -> None:
    from sealstore.config import ConfigError, Settings

    base = {"MINIO_ROOT_USER": "admin", "MINIO_ROOT_PASSWORD": "password123"}
    assert Settings.from_env(base).allow_insecure_ssec is False
    on = Settings.from_env({**base, "SEALSTORE_ALLOW_INSECURE_SSEC": "on"})
    assert on.allow_insecure_ssec is True
    with pytest.raises(ConfigError, match="SEALSTORE_ALLOW_INSECURE_SSEC"):
        Settings.from_env({**base, "SEALSTORE_ALLOW_INSECURE_SSEC": "maybe"})
