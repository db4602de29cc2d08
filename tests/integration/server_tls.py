"""Throw-away HTTPS material for a sealstore test server (nothing here starts a server).

``ServerTLS.create(dir)`` makes a CA and a loopback certificate in ``dir``; ``rotate()``
replaces the files in place (write to a temp name, then rename, as an operator's deploy tool
does) so a SIGHUP test can prove the server picks up the new certificate.
"""

from __future__ import annotations

import os
import ssl
from dataclasses import dataclass
from pathlib import Path

from tests.integration.openbao_certs import CertificateAuthority, write_private


@dataclass
class ServerTLS:
    """CA, certificate and key files of one test server."""

    directory: Path
    ca: CertificateAuthority
    cert_pem: bytes = b""

    @property
    def ca_file(self) -> Path:
        return self.directory / "s3-ca.pem"

    @property
    def cert_file(self) -> Path:
        return self.directory / "s3-server.pem"

    @property
    def key_file(self) -> Path:
        return self.directory / "s3-server.key"

    @classmethod
    def create(cls, directory: Path) -> ServerTLS:
        directory.mkdir(parents=True, exist_ok=True)
        tls = cls(directory=directory, ca=CertificateAuthority.create("sealstore S3 test CA"))
        tls.ca_file.write_bytes(tls.ca.cert_pem())
        tls.rotate()
        return tls

    def rotate(self) -> bytes:
        """Issue a new certificate + key from the same CA into the files; return its DER."""
        cert_pem, key_pem = self.ca.issue_server()
        tmp_key = self.key_file.with_suffix(".key.tmp")
        tmp_cert = self.cert_file.with_suffix(".pem.tmp")
        write_private(tmp_key, key_pem)
        tmp_cert.write_bytes(cert_pem)
        os.replace(tmp_key, self.key_file)
        os.replace(tmp_cert, self.cert_file)
        self.cert_pem = cert_pem
        return self.cert_der()

    def cert_der(self) -> bytes:
        return ssl.PEM_cert_to_DER_cert(self.cert_pem.decode())

    def client_context(self) -> ssl.SSLContext:
        """A verifying client context that trusts only this test CA."""
        return ssl.create_default_context(cafile=str(self.ca_file))
