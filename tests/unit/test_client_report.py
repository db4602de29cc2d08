"""Unit tests of the SSE client's pure reporting parts: summary line, JSON, error lines."""

from __future__ import annotations

import json

import botocore.exceptions
import pytest

from sealstore.client import cli
from sealstore.client import content as client_content
from sealstore.client.endpoint import KMSStatus, _normalise_status, describe_error
from sealstore.client.report import Check, ObjectRecord, Report


def _report(checks, objects=(), key="my-minio-key"):
    rep = Report("http://127.0.0.1:9000", "us-east-1", "abc123")
    rep.checks = list(checks)
    rep.objects = list(objects)
    rep.kms = KMSStatus(available=True, ok=True, key_id=key, raw={"key-id": key, "ok": True})
    return rep


def _obj(size, sse="AES256"):
    return ObjectRecord("b", f"k{size}", "sse-s3", size, "abc123.0", "s", "m", sse=sse)


def test_summary_ok_line_has_counts_size_sse_and_key():
    rep = _report([Check("put", True), Check("get", True)], [_obj(13212113), _obj(1)])
    line = cli.summary_line(rep)
    assert line.startswith("OK sealstore roundtrip: 2/2 checks, 2 objects, 12.6 MiB, sse=AES256,")
    assert "kms-key=my-minio-key" in line and "endpoint=http://127.0.0.1:9000" in line
    assert rep.ok


def test_summary_fail_line_names_first_failure():
    rep = _report(
        [Check("put", True), Check("head", False, "x-amz-server-side-encryption=absent", "k1")],
        [_obj(1, sse=None)],
    )
    line = cli.summary_line(rep)
    assert line.startswith("FAIL sealstore roundtrip: head k1: x-amz-server-side-encryption=absent")
    assert "1/2 checks" in line
    assert not rep.ok


def test_fatal_and_empty_reports_fail():
    rep = _report([])
    assert not rep.ok
    rep.fatal = "endpoint unreachable: http://x (connection refused)"
    assert cli.summary_line(rep).startswith("FAIL sealstore roundtrip: endpoint unreachable")


def test_json_document_fields():
    rep = _report([Check("put", True, "ok", "k1")], [_obj(5)])
    doc = json.loads(json.dumps(rep.to_json()))
    assert doc["ok"] is True
    assert doc["kms_key_id"] == "my-minio-key"
    assert doc["objects"][0] | {} == doc["objects"][0]
    assert {"key", "size", "sha256", "seed", "sse", "etag"} <= set(doc["objects"][0])
    assert doc["checks"][0] == {"name": "put", "ok": True, "detail": "ok", "object": "k1"}
    assert doc["kms"]["status"] == {"key-id": "my-minio-key", "ok": True}


@pytest.mark.parametrize(
    ("doc", "ok", "key", "error"),
    [
        (
            {"key-id": "k", "kind": "vault", "ok": True, "latency_ms": 2.5, "error": None},
            True,
            "k",
            None,
        ),
        ({"key-id": "k", "ok": False, "error": "KMS unreachable"}, False, "k", "KMS unreachable"),
        ({"key-id": "k"}, True, "k", None),  # MinIO shape, no error fields
        ({"key-id": "k", "decryption-error": "bad"}, False, "k", "bad"),
    ],
)
def test_kms_status_normalisation(doc, ok, key, error):
    st = _normalise_status(doc)
    assert (st.ok, st.key_id, st.error) == (ok, key, error)


def _client_error(code, status=403):
    return botocore.exceptions.ClientError(
        {"Error": {"Code": code, "Message": "m"}, "ResponseMetadata": {"HTTPStatusCode": status}},
        "PutObject",
    )


def test_describe_error_lines():
    line, fatal = describe_error(_client_error("SignatureDoesNotMatch"), "http://e")
    assert fatal and line == "bad credentials: SignatureDoesNotMatch (the secret key is wrong)"
    line, fatal = describe_error(_client_error("InvalidAccessKeyId"), "http://e")
    assert fatal and "InvalidAccessKeyId" in line
    line, fatal = describe_error(_client_error("NoSuchBucket", 404), "http://e")
    assert not fatal and line == "NoSuchBucket (HTTP 404): m"
    exc = botocore.exceptions.EndpointConnectionError(endpoint_url="http://e")
    line, fatal = describe_error(exc, "http://e")
    assert fatal and line.startswith("endpoint unreachable: http://e")


def test_scan_subcommand_exit_codes_and_json(tmp_path, capsys):
    size = 100000
    (tmp_path / "clean").write_bytes(client_content.generate("other", 0, 50000))
    assert cli.main(["scan", "--data-dir", str(tmp_path), "--seed", "s1", "--size", str(size)]) == 0
    out = capsys.readouterr().out
    assert out.startswith("OK sealstore scan: no plaintext at rest; 1 files, 48.8 KiB in ")
    assert out.rstrip().endswith("16-byte plaintext runs of seed=s1 size=100000")
    leak = client_content.generate("s1", 777, 40)
    (tmp_path / "leaky").write_bytes(b"header" + leak)
    rc = cli.main(
        ["scan", "--data-dir", str(tmp_path), "--seed", "s1", "--size", "97.65625KiB", "--json"]
    )
    captured = capsys.readouterr()
    doc = json.loads(captured.out)
    assert rc == 1 and doc["ok"] is False and doc["files"] == 2
    assert doc["leaks"][0]["path"].endswith("leaky")
    assert doc["leaks"][0]["file_offset"] == 6 and doc["leaks"][0]["plain_offset"] == 777
    assert captured.err.startswith(
        "FAIL sealstore scan: plaintext of s1 found in 1 file(s), first "
    )
    assert doc["objects"] == [
        {"name": "s1", "seed": "s1", "size": size, "expect": "ciphertext", "plaintext_found": True}
    ]


def test_scan_missing_dir_and_bad_size(tmp_path, capsys):
    assert cli.main(["scan", "--data-dir", str(tmp_path / "x"), "--seed", "s", "--size", "9"]) == 1
    assert "not a directory" in capsys.readouterr().out
    assert cli.main(["scan", "--data-dir", str(tmp_path), "--seed", "s", "--size", "9XB"]) == 1
    assert "invalid size" in capsys.readouterr().out


def test_usage_errors_exit_2(capsys):
    with pytest.raises(SystemExit) as err:
        cli.main(["roundtrip"])
    assert err.value.code == 2
    with pytest.raises(SystemExit):
        cli.main(["roundtrip", "--endpoint", "http://x", "--secret", "s"])


def test_roundtrip_bad_mode_and_no_credentials(monkeypatch, capsys):
    for var in (
        "AWS_ACCESS_KEY_ID",
        "AWS_SECRET_ACCESS_KEY",
        "MINIO_ROOT_USER",
        "MINIO_ROOT_PASSWORD",
    ):
        monkeypatch.delenv(var, raising=False)
    assert cli.main(["roundtrip", "--endpoint", "http://127.0.0.1:9"]) == 1
    assert capsys.readouterr().out.startswith("FAIL sealstore roundtrip: no credentials")
    monkeypatch.setenv("MINIO_ROOT_USER", "u")
    monkeypatch.setenv("MINIO_ROOT_PASSWORD", "p")
    assert cli.main(["roundtrip", "--endpoint", "http://127.0.0.1:9", "--modes", "sse-c"]) == 1
    assert "unknown mode 'sse-c'" in capsys.readouterr().out
