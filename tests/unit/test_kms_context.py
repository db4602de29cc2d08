"""Canonical context encoding: Go encoding/json escaping (HTML set) and the 2019 raw form."""

from __future__ import annotations

import pytest

from sealstore.crypto.kms_context import context_encodings, encode_context, encode_context_legacy


@pytest.mark.parametrize(
    ("ctx", "expected"),
    [
        ({}, b"{}"),
        (None, b"{}"),
        ({"bucket": "bucket/object"}, b'{"bucket":"bucket/object"}'),
        ({"b": "2", "a": "1", "B": "0"}, b'{"B":"0","a":"1","b":"2"}'),
        ({"k": 'q"b\\s'}, b'{"k":"q\\"b\\\\s"}'),
        ({"k": "\n\r\t"}, b'{"k":"\\n\\r\\t"}'),
        ({"k": "\x00\x08\x0c\x1f"}, b'{"k":"\\u0000\\u0008\\u000c\\u001f"}'),
        ({"k": "<a>&"}, b'{"k":"\\u003ca\\u003e\\u0026"}'),
        ({"k": "\u2028\u2029"}, b'{"k":"\\u2028\\u2029"}'),
        ({"k": "\x7f/é😀"}, '{"k":"\x7f/é😀"}'.encode()),
        ({"k": "\ufffd"}, '{"k":"\ufffd"}'.encode()),
        ({"MinIO admin API": "KMSKeyStatusHandler"}, b'{"MinIO admin API":"KMSKeyStatusHandler"}'),
    ],
)
def test_encode_context(ctx: dict[str, str] | None, expected: bytes) -> None:
    assert encode_context(ctx) == expected


def test_invalid_utf8_becomes_replacement_escape() -> None:
    # b"a\xffb" decoded the way servers keep undecodable bytes
    value = b"a\xff\xfeb".decode("utf-8", "surrogateescape")
    assert encode_context({"k": value}) == b'{"k":"a\\ufffd\\ufffdb"}'
    # a lone surrogate is three invalid bytes (ED A0 80) for Go
    assert encode_context({"k": "\ud800"}) == b'{"k":"\\ufffd\\ufffd\\ufffd"}'


def test_keys_sorted_bytewise() -> None:
    ctx = {"\u00e9": "1", "z": "2", "\U0001f600": "3"}
    assert encode_context(ctx) == '{"z":"2","é":"1","😀":"3"}'.encode()


def test_legacy_is_raw() -> None:
    ctx = {"b": 'a"<\\>\n'}
    assert encode_context_legacy(ctx) == b'{"b":"a"<\\>\n"}'
    assert encode_context_legacy({}) == b"{}"
    raw = b"x\xff".decode("utf-8", "surrogateescape")
    assert encode_context_legacy({"k": raw}) == b'{"k":"x\xff"}'


def test_context_encodings_deduplicates() -> None:
    assert context_encodings({"b": "b/o"}) == [b'{"b":"b/o"}']
    assert context_encodings({"b": "b/<o>"}) == [
        b'{"b":"b/\\u003co\\u003e"}',
        b'{"b":"b/<o>"}',
    ]
