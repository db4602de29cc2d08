"""Raw HTTP/1.1 exchanges with a sealstore server for the wire-level fuzz tests.

Requests are written byte for byte on a fresh socket (so malformed request lines, odd header
names and bodies that SDKs would refuse reach the server as sent) and the answer is read with
``http.client`` under a timeout: a server that does not answer in time is a hang, reported as
``Hang`` rather than waited for. Signed requests come from botocore's own SigV4 signer.
"""

from __future__ import annotations

import hashlib
import http.client
import socket
from dataclasses import dataclass
from urllib.parse import urlsplit

from botocore.auth import S3SigV4Auth, SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials

from tests.integration.server import REGION, ROOT_PASSWORD, ROOT_USER

TIMEOUT = 15.0


class Hang(AssertionError):
    """The server neither answered nor closed the connection within TIMEOUT."""


@dataclass
class Answer:
    status: int | None  # None: the server closed the connection without a status line
    headers: dict[str, str]
    body: bytes


def exchange(port: int, raw: bytes, *, head: bool = False, half_close: bool = False) -> Answer:
    """Send ``raw`` on a new connection and read one response.

    ``half_close`` shuts the sending side after the request, for inputs whose framing cannot
    tell the server where they end (raw garbage): the server must then answer or close.
    Complete requests keep the connection open, as clients do (aiohttp drops a request whose
    client half-closed before the answer).
    """
    with socket.create_connection(("127.0.0.1", port), timeout=TIMEOUT) as sock:
        try:
            sock.sendall(raw)
            if half_close:
                sock.shutdown(socket.SHUT_WR)
        except OSError:
            pass  # the server may answer and close before reading everything (e.g. 400)
        resp = http.client.HTTPResponse(sock, method="HEAD" if head else "GET")
        try:
            resp.begin()
            body = resp.read()
        except TimeoutError as exc:
            raise Hang(f"no answer within {TIMEOUT}s to {raw[:200]!r}") from exc
        except (http.client.RemoteDisconnected, ConnectionResetError):
            return Answer(None, {}, b"")
        except http.client.IncompleteRead as exc:
            body = exc.partial
        return Answer(resp.status, {k.lower(): v for k, v in resp.getheaders()}, body)


def build(method: str, target: str, headers: list[tuple[str, str]], body: bytes = b"") -> bytes:
    """A request as bytes; header text is UTF-8 with surrogateescape (raw bytes survive)."""
    head = f"{method} {target} HTTP/1.1\r\n" + "".join(f"{k}: {v}\r\n" for k, v in headers)
    return head.encode("utf-8", "surrogateescape") + b"\r\n" + body


def sign(
    port: int,
    method: str,
    path_and_query: str,
    body: bytes = b"",
    headers: dict[str, str] | None = None,
    *,
    payload_hash: str | None = None,
) -> list[tuple[str, str]]:
    """botocore SigV4 headers (Host, X-Amz-Date, Authorization, ...) for this request.

    With ``payload_hash`` (a streaming sentinel) the plain SigV4 signer is used, because the
    S3 one replaces x-amz-content-sha256 with the body's hash; the path must then already be
    normal (no ``//`` or dot segments), which the callers' fixed paths are.
    """
    url = f"http://127.0.0.1:{port}{path_and_query}"
    hdrs = dict(headers or {})
    hdrs["x-amz-content-sha256"] = payload_hash or hashlib.sha256(body).hexdigest()
    req = AWSRequest(method=method, url=url, data=body, headers=hdrs)
    signer = S3SigV4Auth if payload_hash is None else SigV4Auth
    signer(Credentials(ROOT_USER, ROOT_PASSWORD), "s3", REGION).add_auth(req)
    out = [("Host", urlsplit(url).netloc)]
    out += [(k, str(v)) for k, v in req.headers.items() if k.lower() != "host"]
    has_length = any(k.lower() == "content-length" for k, _ in out)
    if (body or method in ("PUT", "POST")) and not has_length:
        out.append(("Content-Length", str(len(body))))
    return out


def signed_exchange(
    port: int,
    method: str,
    path_and_query: str,
    body: bytes = b"",
    headers: dict[str, str] | None = None,
) -> Answer:
    """Sign with botocore and send as is."""
    hdrs = sign(port, method, path_and_query, body, headers)
    return exchange(port, build(method, path_and_query, hdrs, body), head=method == "HEAD")
