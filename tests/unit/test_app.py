"""s3.errors.s3_error_for (the one exception table): every internal failure a client can cause
becomes the right S3 error."""

from __future__ import annotations

import pytest

from sealstore.s3.errors import S3Error
from sealstore.s3.errors import s3_error_for as map_exception
from sealstore.storage import base as st


def mapped(exc: BaseException) -> S3Error:
    err = map_exception(exc)
    assert err is not None, f"{type(exc).__name__} is not mapped (would be a 500)"
    return err


def test_storage_full_is_507_xminio_storage_full() -> None:
    err = mapped(st.StorageFull("data directory is full: No space left on device"))
    assert (err.code, err.status) == ("XMinioStorageFull", 507)
    assert "full" in err.message and "nothing was stored" in err.message
    xml = err.to_xml("/b/k", "req1").decode()
    assert "<Code>XMinioStorageFull</Code>" in xml


def test_storage_invalid_argument_is_400_with_its_message() -> None:
    err = mapped(st.InvalidArgument("part number must be 1..10000"))
    assert (err.code, err.status) == ("InvalidArgument", 400)
    assert err.message == "part number must be 1..10000"


@pytest.mark.parametrize(
    ("exc", "code", "status"),
    [
        (st.NoSuchBucket("b"), "NoSuchBucket", 404),
        (st.NoSuchKey("k"), "NoSuchKey", 404),
        (st.BucketNotEmpty("b"), "BucketNotEmpty", 409),
        (st.NoSuchUpload("u"), "NoSuchUpload", 404),
        (st.InvalidPart("p"), "InvalidPart", 400),
        (st.InvalidPartOrder("p"), "InvalidPartOrder", 400),
        (st.EntityTooSmall("p"), "EntityTooSmall", 400),
        (st.InvalidBucketName("bad"), "InvalidBucketName", 400),
        (st.InvalidObjectName("object key must not contain NUL"), "InvalidArgument", 400),
        (st.DataCorrupted("short"), "XMinioObjectTampered", 500),
    ],
)
def test_every_storage_error_class_maps_to_its_code(
    exc: st.StorageError, code: str, status: int
) -> None:
    err = mapped(exc)
    assert (err.code, err.status) == (code, status)


def test_every_storage_error_subclass_is_mapped() -> None:
    """A new StorageError subclass without a mapping would silently become a 500."""
    for cls in st.StorageError.__subclasses__():
        exc = cls("reason")
        err = mapped(exc)
        # server-side faults by design: a full drive (507), data changed at rest (500)
        assert err.status < 500 or cls in (st.StorageFull, st.DataCorrupted), cls.__name__


def test_unknown_exception_is_not_mapped() -> None:
    assert map_exception(RuntimeError("boom")) is None
    assert map_exception(st.StorageError("cannot use data directory")) is None


def test_kms_access_denied_is_403_naming_the_key() -> None:
    from sealstore.kms.base import KMSAccessDeniedError

    err = mapped(KMSAccessDeniedError("Vault denied datakey/plaintext on key 'k1' (HTTP 403)"))
    assert (err.code, err.status) == ("AccessDenied", 403)
    assert "'k1'" in err.message


def test_kms_login_error_is_503_with_its_own_message_and_retry_after() -> None:
    from sealstore.kms.base import KMSLoginError

    err = mapped(KMSLoginError("KMS login failed: invalid role or secret ID (HTTP 400)"))
    assert (err.code, err.status) == ("ServiceUnavailable", 503)
    assert err.message.startswith("KMS login failed: invalid role or secret ID")
    assert "unreachable" not in err.message  # it is reachable; the credentials are wrong
    assert err.headers["Retry-After"]


def test_plain_kms_unavailable_still_503_unreachable() -> None:
    from sealstore.kms.base import KMSUnavailableError

    err = mapped(KMSUnavailableError("Vault at http://127.0.0.1:1 is unreachable"))
    assert (err.code, err.status) == ("ServiceUnavailable", 503)
    assert "unreachable" in err.message
