"""A real sealstore process over HTTPS, and its operational endpoints closed to strangers.

Proves issue 8 item 10: with a certificate and key file the server speaks HTTPS that boto3
verifies against the issuing CA (and refuses without it), TLS 1.0/1.1 handshakes are refused
while 1.2 and 1.3 succeed, a broken certificate pair is a one-line configuration error, and
SIGHUP (forwarded to every worker) swaps the certificate for new connections while a request
already in flight on the old one completes. Plain HTTP remains what you get without the files.

Proves item 9: without credentials readiness answers only ``ok``/``not-ok`` (no KMS kind, key
id, Vault URL or error) and metrics answer 401; a wrong bearer token gets 403; the admin token
or a root SigV4 signature gets the detailed view.
"""

from __future__ import annotations

import hashlib
import http.client
import json
import socket
import ssl
import time
import urllib.parse
from collections.abc import Iterator
from pathlib import Path

import pytest
from botocore.exceptions import SSLError as BotoSSLError

from tests.integration.server import (
    ROOT_PASSWORD,
    ROOT_USER,
    ServerProcess,
    base_env,
    free_port,
)
from tests.integration.server_tls import ServerTLS

MASTER_KEY = "tls-test-key:" + hashlib.sha256(b"tls integration").hexdigest()


@pytest.fixture
def tls(tmp_path: Path) -> ServerTLS:
    return ServerTLS.create(tmp_path / "tls")


@pytest.fixture
def https_server(tmp_path: Path, tls: ServerTLS) -> Iterator[ServerProcess]:
    env = base_env(MINIO_SSE_MASTER_KEY=MASTER_KEY)
    srv = ServerProcess(tmp_path / "data", env, tmp_path / "server.log", tls=tls, workers=2)
    srv.start()
    srv.wait_ready()
    deadline = time.monotonic() + 30  # both workers serving, so both get the SIGHUPs below
    while time.monotonic() < deadline:
        if (
            len(
                {
                    r.get("pid")
                    for r in srv.log_records()
                    if r.get("msg") == "sealstore ready to serve"
                }
            )
            == 2
        ):
            break
        time.sleep(0.1)
    try:
        yield srv
    finally:
        srv.stop()
        log = srv.log_text()
        for secret in (ROOT_PASSWORD, MASTER_KEY.split(":")[1], srv.metrics_token):
            assert secret not in log


def _peer_cert(port: int, context: ssl.SSLContext) -> tuple[bytes, str]:
    with (
        socket.create_connection(("127.0.0.1", port), timeout=5) as raw,
        context.wrap_socket(raw, server_hostname="127.0.0.1") as tls_sock,
    ):
        der = tls_sock.getpeercert(binary_form=True)
        assert der is not None
        return der, str(tls_sock.version())


def test_https_round_trip_verified_against_the_ca(https_server: ServerProcess) -> None:
    assert https_server.endpoint.startswith("https://")
    s3 = https_server.client()
    s3.create_bucket(Bucket="tls")
    s3.put_object(Bucket="tls", Key="k", Body=b"over https", ServerSideEncryption="AES256")
    got = s3.get_object(Bucket="tls", Key="k")
    assert got["Body"].read() == b"over https"
    assert got["ServerSideEncryption"] == "AES256"
    # verification is on: a client that does not trust the CA cannot talk to the server
    untrusting = https_server.client(verify=True)
    with pytest.raises(BotoSSLError):
        untrusting.list_buckets()
    # and plain HTTP is not answered on the same port
    conn = http.client.HTTPConnection("127.0.0.1", https_server.port, timeout=5)
    try:
        conn.request("GET", "/minio/health/live")
        status: int | None = conn.getresponse().status
    except (http.client.HTTPException, OSError):
        status = None
    finally:
        conn.close()
    assert status != 200


@pytest.mark.filterwarnings("ignore:ssl.TLSVersion.TLSv1:DeprecationWarning")
def test_tls_below_1_2_is_refused(https_server: ServerProcess) -> None:
    old = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    old.load_verify_locations(cafile=str(https_server.tls.ca_file))  # type: ignore[union-attr]
    old.set_ciphers("DEFAULT:@SECLEVEL=0")  # let this client really offer TLS 1.0/1.1
    old.minimum_version = ssl.TLSVersion.TLSv1
    old.maximum_version = ssl.TLSVersion.TLSv1_1
    with pytest.raises(ssl.SSLError) as exc:
        _peer_cert(https_server.port, old)
    assert "VERSION" in str(exc.value).upper() or "PROTOCOL" in str(exc.value).upper()
    for version in (ssl.TLSVersion.TLSv1_2, ssl.TLSVersion.TLSv1_3):
        ctx = https_server.tls.client_context()  # type: ignore[union-attr]
        ctx.minimum_version = ctx.maximum_version = version
        _, negotiated = _peer_cert(https_server.port, ctx)
        assert negotiated == {"TLSv1_2": "TLSv1.2", "TLSv1_3": "TLSv1.3"}[version.name]


def _reloads(srv: ServerProcess) -> set[int]:
    return {int(r["pid"]) for r in srv.log_records() if r.get("msg") == "tls certificate reloaded"}


def test_sighup_swaps_the_certificate_and_keeps_in_flight_requests(
    https_server: ServerProcess,
) -> None:
    srv = https_server
    tls = srv.tls
    assert tls is not None
    s3 = srv.client()
    s3.create_bucket(Bucket="rotate")
    old_der, _ = _peer_cert(srv.port, tls.client_context())
    assert old_der == tls.cert_der()

    # An upload in flight on a connection made with the old certificate.
    body = b"in flight across a certificate reload " * 4096
    url = urllib.parse.urlsplit(
        s3.generate_presigned_url(
            "put_object", Params={"Bucket": "rotate", "Key": "inflight"}, ExpiresIn=300
        )
    )
    conn = http.client.HTTPSConnection("127.0.0.1", srv.port, context=tls.client_context())
    conn.putrequest("PUT", f"{url.path}?{url.query}", skip_accept_encoding=True)
    conn.putheader("Content-Length", str(len(body)))
    conn.endheaders()
    half = len(body) // 2
    conn.send(body[:half])
    sock = conn.sock
    assert isinstance(sock, ssl.SSLSocket)
    assert sock.getpeercert(binary_form=True) == old_der

    new_der = tls.rotate()
    assert new_der != old_der
    srv.reload()
    deadline = time.monotonic() + 20
    while len(_reloads(srv)) < 2 and time.monotonic() < deadline:
        time.sleep(0.1)
    assert len(_reloads(srv)) == 2, "every worker reloads (the supervisor forwards SIGHUP)"
    assert srv.proc is not None and srv.proc.poll() is None
    for _ in range(6):  # whichever worker accepts, a new connection sees the new certificate
        assert _peer_cert(srv.port, tls.client_context())[0] == new_der

    conn.send(body[half:])
    resp = conn.getresponse()
    assert resp.status == 200, resp.read()
    resp.read()
    conn.close()
    assert s3.get_object(Bucket="rotate", Key="inflight")["Body"].read() == body
    assert s3.head_bucket(Bucket="rotate")["ResponseMetadata"]["HTTPStatusCode"] == 200


def test_a_broken_reload_keeps_the_previous_certificate(https_server: ServerProcess) -> None:
    srv = https_server
    tls = srv.tls
    assert tls is not None
    before, _ = _peer_cert(srv.port, tls.client_context())
    tls.key_file.write_bytes(tls.ca.issue_server()[1])  # a key that does not match the cert
    srv.reload()
    deadline = time.monotonic() + 20
    failed: list[dict[str, object]] = []
    while len(failed) < 2 and time.monotonic() < deadline:
        failed = [r for r in srv.log_records() if "reload failed" in str(r.get("msg"))]
        time.sleep(0.1)
    assert len(failed) == 2
    assert _peer_cert(srv.port, tls.client_context())[0] == before
    assert srv.client().list_buckets()["ResponseMetadata"]["HTTPStatusCode"] == 200


def test_a_mismatched_pair_is_a_configuration_error(tmp_path: Path, tls: ServerTLS) -> None:
    tls.key_file.write_bytes(tls.ca.issue_server()[1])
    srv = ServerProcess(tmp_path / "data", base_env(), tmp_path / "log", tls=tls)
    srv.start(wait=False)
    assert srv.proc is not None
    assert srv.proc.wait(20) == 2
    text = srv.log_text()
    assert "configuration error: SEALSTORE_TLS_CERT_FILE/SEALSTORE_TLS_KEY_FILE" in text
    assert "Traceback" not in text


# --- item 9: readiness and metrics ---


def _signed_get(srv: ServerProcess, path: str) -> tuple[int, bytes]:
    from botocore.auth import S3SigV4Auth
    from botocore.awsrequest import AWSRequest
    from botocore.credentials import Credentials

    request = AWSRequest(method="GET", url=srv.endpoint + path, data=b"")
    S3SigV4Auth(Credentials(ROOT_USER, ROOT_PASSWORD), "s3", "us-east-1").add_auth(request)
    conn = http.client.HTTPSConnection(
        "127.0.0.1",
        srv.port,
        context=srv.tls.client_context(),  # type: ignore[union-attr]
        timeout=5,
    )
    try:
        conn.request("GET", path, headers=dict(request.prepare().headers.items()))
        resp = conn.getresponse()
        return resp.status, resp.read()
    finally:
        conn.close()


def _anonymous(srv: ServerProcess, path: str, token: str | None) -> tuple[int, bytes, str]:
    scheme_conn = (
        http.client.HTTPSConnection("127.0.0.1", srv.port, context=srv.tls.client_context())
        if srv.tls is not None
        else http.client.HTTPConnection("127.0.0.1", srv.port)
    )
    headers = {"Authorization": f"Bearer {token}"} if token is not None else {}
    try:
        scheme_conn.request("GET", path, headers=headers)
        resp = scheme_conn.getresponse()
        return resp.status, resp.read(), resp.getheader("WWW-Authenticate") or ""
    finally:
        scheme_conn.close()


def test_readiness_and_metrics_reveal_nothing_without_the_token(
    https_server: ServerProcess,
) -> None:
    srv = https_server
    status, body = srv.get("/minio/health/ready", auth=False)
    assert (status, body) == (200, b"ok")
    status, body, challenge = _anonymous(srv, "/minio/v2/metrics/cluster", None)
    assert status == 401 and challenge.startswith("Bearer") and b"sealstore_" not in body
    status, body, _ = _anonymous(srv, "/minio/v2/metrics/cluster", "wrong-token-0123456789")
    assert status == 403 and b"sealstore_" not in body
    status, body, _ = _anonymous(srv, "/minio/health/ready", "wrong-token-0123456789")
    assert status == 403 and b"master-key" not in body

    status, body = srv.get("/minio/v2/metrics/cluster")
    assert status == 200 and b"sealstore_requests_total" in body
    status, doc = srv.ready()
    assert status == 200 and doc["kms"]["kind"] == "master-key"
    assert doc["kms"]["key_id"] == "tls-test-key"
    # the root credentials may sign instead of the token
    status, body = _signed_get(srv, "/minio/v2/metrics/cluster")
    assert status == 200 and b"sealstore_ready 1" in body
    status, body = _signed_get(srv, "/minio/health/ready")
    assert status == 200 and json.loads(body)["ready"] is True


def test_not_ready_says_not_ok_and_hides_the_vault_details(tmp_path: Path) -> None:
    dead = f"http://127.0.0.1:{free_port()}"
    env = base_env(
        MINIO_SSE_VAULT_ENDPOINT=dead,
        MINIO_SSE_VAULT_APPROLE_ID="role-id-for-a-dead-vault",
        MINIO_SSE_VAULT_APPROLE_SECRET="secret-id-for-a-dead-vault",
        MINIO_SSE_VAULT_KEY_NAME="hidden-key-name",
    )
    with ServerProcess(tmp_path / "data", env, tmp_path / "log").start() as srv:
        assert srv.endpoint.startswith("http://")  # plain HTTP without certificate files
        deadline = time.monotonic() + 20
        doc: dict[str, object] = {}
        while time.monotonic() < deadline:
            status, doc = srv.ready()
            if "kms" in doc and doc["kms"].get("error") != "self-test not run yet":  # type: ignore[union-attr]
                break
            time.sleep(0.2)
        assert status == 503 and "127.0.0.1" in json.dumps(doc)  # the operator's view
        status, body = srv.get("/minio/health/ready", auth=False)
        assert (status, body) == (503, b"not-ok")
        status, body, _ = _anonymous(srv, "/minio/v2/metrics/cluster", None)
        assert status == 401 and b"hidden-key-name" not in body and dead.encode() not in body
