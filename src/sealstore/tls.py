"""HTTPS for the S3 endpoint: one server context per worker, reloaded on SIGHUP.

Why this shape: aiohttp binds its ``ssl.SSLContext`` when the server starts and offers no way
to swap it, and restarting the worker would drop every open connection. So the context the
server listens with carries an ``sni_callback`` that hands each *new* handshake to the
current context; a reload builds a fresh context from the files (off the event loop) and
replaces the current one only when it loaded completely. Connections already established keep
the certificate they negotiated and finish undisturbed; a broken file on reload is logged and
the previous certificate stays in service, so a bad rotation never takes the endpoint down.

TLS 1.2 is the minimum (TLS 1.0/1.1 are refused at the handshake), with OpenSSL's default
cipher list and security level; ALPN offers only ``http/1.1`` (what aiohttp speaks).
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import os
import ssl
from pathlib import Path

MIN_VERSION = ssl.TLSVersion.TLSv1_2


def load_context(cert_file: Path, key_file: Path) -> ssl.SSLContext:
    """A fresh server context holding ``cert_file``'s chain and ``key_file``'s key.

    Raises ``ssl.SSLError`` (mismatched or unparsable material) or ``OSError`` (unreadable).
    """
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.minimum_version = MIN_VERSION
    ctx.options |= ssl.OP_NO_COMPRESSION | ssl.OP_CIPHER_SERVER_PREFERENCE
    ctx.set_alpn_protocols(["http/1.1"])
    ctx.load_cert_chain(certfile=os.fspath(cert_file), keyfile=os.fspath(key_file))
    return ctx


def fingerprint(cert_file: Path) -> str:
    """SHA-256 of the leaf certificate (the first PEM block), for the reload log line."""
    pem = cert_file.read_text(encoding="ascii", errors="replace")
    end = pem.find("-----END CERTIFICATE-----")
    if end < 0:
        return "unknown"
    der = ssl.PEM_cert_to_DER_cert(pem[: end + len("-----END CERTIFICATE-----")])
    return hashlib.sha256(der).hexdigest()


class CertificateReloader:
    """The listening context plus the current one; ``reload()`` swaps in new files' content."""

    def __init__(self, cert_file: Path, key_file: Path, logger: logging.Logger) -> None:
        self.cert_file = cert_file
        self.key_file = key_file
        self._log = logger
        self._stamp = self._files_stamp()
        self.listening = load_context(cert_file, key_file)
        self.listening.sni_callback = self._select
        self._current = self.listening
        self.reloads = 0

    def _files_stamp(self) -> tuple[tuple[int, int, int], ...]:
        stamps = []
        for path in (self.cert_file, self.key_file):
            try:
                st = path.stat()
            except OSError:
                stamps.append((0, 0, 0))
                continue
            stamps.append((st.st_ino, st.st_size, st.st_mtime_ns))
        return tuple(stamps)

    def changed_since_load(self) -> bool:
        """True when the files differ from what was last loaded. A SIGHUP that reaches a worker
        before its handler is installed is lost; the worker calls this once the handler is in
        place and reloads, so no worker keeps an old certificate after a rotation."""
        return self._files_stamp() != self._stamp

    def _select(self, sslobj: ssl.SSLObject, _server_name: str | None, ctx: ssl.SSLContext) -> None:
        """OpenSSL calls this early in every handshake (also without SNI): use the newest."""
        current = self._current
        if current is not ctx:
            sslobj.context = current

    def _load(self) -> tuple[ssl.SSLContext, str]:
        self._stamp = self._files_stamp()
        return load_context(self.cert_file, self.key_file), fingerprint(self.cert_file)

    async def reload(self) -> bool:
        """Load the files again; on success new handshakes use them. Never raises."""
        loop = asyncio.get_running_loop()
        try:
            ctx, digest = await loop.run_in_executor(None, self._load)
        except (OSError, ssl.SSLError, ValueError) as exc:
            self._log.error(
                "tls certificate reload failed; keeping the previous certificate",
                extra={"cert_file": str(self.cert_file), "error": str(exc)},
            )
            return False
        self._current = ctx
        self.reloads += 1
        self._log.info(
            "tls certificate reloaded",
            extra={"cert_file": str(self.cert_file), "sha256": digest, "pid": os.getpid()},
        )
        return True
