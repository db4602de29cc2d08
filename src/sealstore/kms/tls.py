"""TLS trust for the Vault connection from ``MINIO_SSE_VAULT_CAPATH`` (a PEM file or a directory).

MinIO documented CAPATH as a directory, operators often pass a single CA file, and "certificate
signed by unknown authority" was a top support issue (minio/minio#15198, minio/kes#99). Accept
both. OpenSSL's own ``capath`` needs ``c_rehash`` hash-named links, so a directory is instead read
file by file and every PEM certificate found is trusted; non-certificate files are skipped.
"""

from __future__ import annotations

import ssl
from pathlib import Path

_PEM_MARKER = "-----BEGIN CERTIFICATE-----"


def _read_pems(path: Path) -> str:
    if path.is_file():
        text = path.read_text(encoding="ascii", errors="replace")
        if _PEM_MARKER not in text:
            raise ValueError(f"CA file {str(path)!r} contains no PEM certificate")
        return text
    if path.is_dir():
        chunks = []
        for entry in sorted(path.iterdir()):
            if not entry.is_file():
                continue
            try:
                text = entry.read_text(encoding="ascii", errors="replace")
            except OSError:
                continue
            if _PEM_MARKER in text:
                chunks.append(text)
        if not chunks:
            raise ValueError(f"CA directory {str(path)!r} contains no PEM certificate")
        return "\n".join(chunks)
    raise ValueError(f"CA path {str(path)!r} does not exist or is not a file or directory")


def client_ssl_context(capath: str | None) -> ssl.SSLContext:
    """Verifying client context: the given CAs only, or the system trust store when ``None``.

    Blocking file reads: call it at start-up, not per request.
    """
    if capath is None:
        ctx = ssl.create_default_context(ssl.Purpose.SERVER_AUTH)
    else:
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        try:
            ctx.load_verify_locations(cadata=_read_pems(Path(capath)))
        except ssl.SSLError as exc:
            raise ValueError(f"CA path {capath!r} holds an unreadable certificate: {exc}") from None
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    ctx.check_hostname = True
    ctx.verify_mode = ssl.CERT_REQUIRED
    return ctx
