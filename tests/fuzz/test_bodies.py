"""Request-body parsers: XML documents in every encoding and aws-chunked streams.

Proves that the XML parser refuses every DTD and entity declaration whatever the encoding
(UTF-8, UTF-16 LE/BE with and without BOM, UTF-32, Latin-1) with MalformedXML and never
expands an entity; that the three S3 document parsers (Delete, CompleteMultipartUpload,
ServerSideEncryptionConfiguration) answer any byte string with a result or a typed 4xx error;
and that the aws-chunked decoder, fed arbitrary and mutated framings through a real aiohttp
StreamReader, yields data or raises S3Error, never anything else and never hangs.
"""

from __future__ import annotations

import asyncio
import socket

from aiohttp.base_protocol import BaseProtocol
from aiohttp.streams import StreamReader
from hypothesis import given, settings
from hypothesis import strategies as st

from sealstore.client.chunked_encoder import encode_aws_chunked
from sealstore.s3.chunked import AwsChunkedDecoder
from sealstore.s3.errors import S3Error
from sealstore.s3.handlers.bucket_encryption import parse_encryption_config
from sealstore.s3.handlers.delete_objects import parse_delete_request
from sealstore.s3.handlers.multipart_xml import parse_complete_request
from sealstore.s3.sigv4 import AuthResult
from sealstore.s3.sigv4_canonical import derive_signing_key
from sealstore.s3.sigv4_parse import PayloadMode
from sealstore.s3.xml import MalformedXMLError, parse

from .strategies import budget, typed
from .xmldocs import DTDS, ENCODINGS, encode, encoded

PARSERS = {
    "Delete": parse_delete_request,
    "CompleteMultipartUpload": parse_complete_request,
    "ServerSideEncryptionConfiguration": parse_encryption_config,
}
ROOTS = st.sampled_from(sorted(PARSERS))


@settings(max_examples=budget(2))
@given(root=ROOTS, doc=st.data())
def test_document_parsers_answer_any_body(root: str, doc: st.DataObject) -> None:
    text, data = doc.draw(encoded(root))
    result = typed(PARSERS[root], data)
    if result is not None and "<!" in text.upper():
        raise AssertionError(f"a body with a DTD was accepted: {text!r}")


@settings(max_examples=budget(0.5))
@given(data=st.binary(max_size=300), root=ROOTS)
def test_document_parsers_answer_random_bytes(data: bytes, root: str) -> None:
    typed(PARSERS[root], data)


@settings(max_examples=budget())
@given(
    dtd=st.sampled_from(DTDS),
    encoding=st.sampled_from(sorted(ENCODINGS)),
    declare=st.booleans(),
    root=ROOTS,
)
def test_dtd_refused_in_every_encoding(dtd: str, encoding: str, declare: bool, root: str) -> None:
    """The item-4 property: no encoding smuggles a DTD or an entity past the parser."""
    data = encode(f"{dtd}<{root}><Object><Key>&x;</Key></Object></{root}>", encoding, declare)
    try:
        parse(data)
    except MalformedXMLError:
        return
    raise AssertionError(f"{encoding} body with a DTD parsed: {data[:80]!r}")


@settings(max_examples=budget(0.5))
@given(
    encoding=st.sampled_from([e for e in ENCODINGS if "32" not in e]),
    declare=st.booleans(),
    key=st.text(st.characters(blacklist_categories=("Cs", "Cc")), min_size=1, max_size=30),
)
def test_plain_documents_parse_in_every_encoding(encoding: str, declare: bool, key: str) -> None:
    """Without a DTD, a Delete body reads the same key whatever encoding carries it."""
    escaped = key.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
    declare = declare or encoding == "latin-1"  # only UTF-8/16 need no declaration
    try:
        data = encode(f"<Delete><Object><Key>{escaped}</Key></Object></Delete>", encoding, declare)
    except UnicodeEncodeError:
        return  # Latin-1 cannot carry this key
    if "\ufffe" in key or "\uffff" in key:  # not XML characters at all
        return
    assert parse_delete_request(data).keys == [key]


# ------------------------------------------------------------------ aws-chunked

AK, SK = "fuzzaccesskey", "fuzz-secret-key-0123456789"
DATE = "20261202T000000Z"


def _auth(mode: PayloadMode) -> AuthResult:
    return AuthResult(
        access_key=AK,
        payload_mode=mode,
        declared_sha256=None,
        signing_key=derive_signing_key(SK, DATE[:8], "us-east-1"),
        seed_signature="0" * 64,
        amz_date=DATE,
        scope=f"{DATE[:8]}/us-east-1/s3/aws4_request",
        region="us-east-1",
        presigned=False,
        signed_headers=("host",),
    )


STREAMING = [m for m in PayloadMode if m.is_streaming]


async def _decode(body: bytes, auth: AuthResult, piece: int, **kwargs: object) -> bytes:
    loop = asyncio.get_running_loop()
    sock_a, sock_b = socket.socketpair()
    protocol = BaseProtocol(loop)
    transport, _ = await loop.create_connection(lambda: protocol, sock=sock_a)
    protocol.transport = transport  # type: ignore[assignment]
    reader = StreamReader(protocol, 2**16, loop=loop)
    for i in range(0, len(body), piece):
        reader.feed_data(body[i : i + piece])
    reader.feed_eof()
    out = []
    try:
        async for chunk in AwsChunkedDecoder(reader, auth, **kwargs):  # type: ignore[arg-type]
            out.append(chunk)
    finally:
        transport.close()
        sock_b.close()
    return b"".join(out)


def decode(body: bytes, auth: AuthResult, piece: int, **kwargs: object) -> bytes | None:
    """Decode within 10 s (a hang fails the test); S3Error becomes None."""
    try:
        return asyncio.run(asyncio.wait_for(_decode(body, auth, piece, **kwargs), 10))
    except S3Error:
        return None


@st.composite
def chunked_bodies(draw: st.DrawFn) -> tuple[PayloadMode, bytes, bytes, dict[str, str]]:
    mode = draw(st.sampled_from(STREAMING))
    chunks = draw(st.lists(st.binary(min_size=1, max_size=64), max_size=4))
    trailers = {}
    if mode.has_trailer and draw(st.booleans()):
        trailers = {"x-amz-checksum-crc32": draw(st.sampled_from(["AAAAAA==", "bad", ""]))}
    auth = _auth(mode)
    body = b"".join(
        encode_aws_chunked(
            chunks,
            mode,
            signing_key=auth.signing_key,
            seed_signature=auth.seed_signature,
            amz_date=auth.amz_date,
            scope=auth.scope,
            trailers=trailers or None,
        )
    )
    return mode, b"".join(chunks), body, trailers


@settings(max_examples=budget(2))
@given(
    case=chunked_bodies(),
    edits=st.lists(st.tuples(st.integers(0, 10**6), st.binary(max_size=6)), max_size=3),
    piece=st.integers(1, 64),
    declared=st.booleans(),
)
def test_chunked_decoder_mutations(
    case: tuple[PayloadMode, bytes, bytes, dict[str, str]],
    edits: list[tuple[int, bytes]],
    piece: int,
    declared: bool,
) -> None:
    """An intact body decodes to its data; a mutated one decodes or raises S3Error."""
    mode, data, body, trailers = case
    mutated = body
    for at, repl in edits:
        at = at % (len(mutated) + 1)
        mutated = mutated[:at] + repl + mutated[at + len(repl) // 2 + 1 :]
    out = decode(
        mutated,
        _auth(mode),
        piece,
        decoded_length=len(data) if declared else None,
        expected_trailers=list(trailers),
    )
    if mutated == body:
        assert out == data
    elif out is not None and mode.chunks_signed:
        assert out == data  # signed chunks: a change is refused, never passed on


@settings(max_examples=budget())
@given(
    mode=st.sampled_from(STREAMING),
    body=st.binary(max_size=200)
    | st.lists(
        st.sampled_from(
            [
                *(b"0", b"1", b"f", b"ffffffffffffffff", b";chunk-signature=", b"\r\n", b"\n"),
                *(b"x", b"a" * 64, b"x-amz-checksum-crc32:AAAAAA==", b"x-amz-trailer-signature:"),
            ]
        ),
        max_size=12,
    ).map(b"".join),
    piece=st.integers(1, 64),
)
def test_chunked_decoder_random_framing(mode: PayloadMode, body: bytes, piece: int) -> None:
    decode(body, _auth(mode), piece, decoded_length=None, expected_trailers=[])
