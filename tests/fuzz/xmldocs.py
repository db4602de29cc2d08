"""XML request documents for the fuzz suite, in every encoding a client might send.

Documents are built from a few S3 shapes (Delete, CompleteMultipartUpload,
ServerSideEncryptionConfiguration), optionally carrying a DTD with internal, parameter or
external entities, then encoded as UTF-8, UTF-16 LE/BE (with and without BOM) or UTF-32,
with or without an XML declaration naming the encoding, and finally maybe mutated bytewise.
"""

from __future__ import annotations

import codecs

from hypothesis import strategies as st

# name -> (Python codec, BOM written before the document, label for the XML declaration)
ENCODINGS: dict[str, tuple[str, bytes, str]] = {
    "utf-8": ("utf-8", b"", "UTF-8"),
    "utf-8+bom": ("utf-8", codecs.BOM_UTF8, "UTF-8"),
    "utf-16-le": ("utf-16-le", b"", "UTF-16"),
    "utf-16-be": ("utf-16-be", b"", "UTF-16"),
    "utf-16-le+bom": ("utf-16-le", codecs.BOM_UTF16_LE, "UTF-16"),
    "utf-16-be+bom": ("utf-16-be", codecs.BOM_UTF16_BE, "UTF-16"),
    "utf-32-le": ("utf-32-le", b"", "UTF-32"),
    "utf-32-be": ("utf-32-be", b"", "UTF-32"),
    "utf-32-le+bom": ("utf-32-le", codecs.BOM_UTF32_LE, "UTF-32"),
    "latin-1": ("latin-1", b"", "ISO-8859-1"),
}
DTDS = [
    '<!DOCTYPE Delete [<!ENTITY x "expanded">]>',
    '<!DOCTYPE Delete [<!ENTITY a "aaaaaaaaaa"><!ENTITY b "&a;&a;&a;&a;&a;&a;&a;&a;">]>',
    '<!DOCTYPE Delete SYSTEM "file:///etc/passwd">',
    '<!DOCTYPE Delete [<!ENTITY x SYSTEM "file:///etc/hostname">]>',
    "<!DOCTYPE Delete [<!ENTITY % p \"<!ENTITY x 'y'>\"> %p;]>",
    "<!DOCTYPE Delete>",
    '<!doctype Delete [<!ENTITY x "lower">]>',
]
TEXT = st.text(st.characters(blacklist_categories=("Cs",)), max_size=20)


def encode(text: str, encoding: str, declare: bool) -> bytes:
    """``text`` in ``encoding`` (BOM per the name), with an XML declaration if ``declare``."""
    python_codec, bom, label = ENCODINGS[encoding]
    if declare:
        text = f'<?xml version="1.0" encoding="{label}"?>' + text
    return bom + text.encode(python_codec)


@st.composite
def bodies(draw: st.DrawFn, root: str) -> str:
    """One S3 request body's text with this root element."""
    ns = draw(st.sampled_from(["", ' xmlns="http://s3.amazonaws.com/doc/2006-03-01/"']))
    ref = draw(st.sampled_from(["", "&x;", "&b;", "&amp;", "&#65;", "&#x0;", "&lt;"]))
    value = draw(TEXT).replace("&", "&amp;").replace("<", "&lt;") + ref
    if root == "Delete":
        inner = "".join(
            f"<Object><Key>{value}{i}</Key></Object>" for i in range(draw(st.integers(0, 3)))
        )
        if draw(st.booleans()):
            inner = f"<Quiet>{draw(st.sampled_from(['true', 'false', value]))}</Quiet>" + inner
    elif root == "CompleteMultipartUpload":
        number = draw(st.sampled_from(["1", "2", "0", "10001", "²", "٣", "-1", " 1 ", value]))
        inner = "".join(
            f"<Part><PartNumber>{number}</PartNumber><ETag>{value}</ETag></Part>"
            for _ in range(draw(st.integers(0, 3)))
        )
    else:
        alg = draw(st.sampled_from(["AES256", "aws:kms", value]))
        inner = (
            "<Rule><ApplyServerSideEncryptionByDefault>"
            f"<SSEAlgorithm>{alg}</SSEAlgorithm>"
            "</ApplyServerSideEncryptionByDefault></Rule>"
        )
    dtd = draw(st.sampled_from(["", "", *DTDS]))
    return f"{dtd}<{root}{ns}>{inner}</{root}>"


@st.composite
def encoded(draw: st.DrawFn, root: str) -> tuple[str, bytes]:
    """(text, bytes): a body of ``root`` in a random encoding, maybe byte-mutated after."""
    text = draw(bodies(root))
    encoding = draw(st.sampled_from(sorted(ENCODINGS)))
    try:
        data = encode(text, encoding, draw(st.booleans()))
    except UnicodeEncodeError:
        data = encode(text, "utf-8", False)
    if draw(st.integers(0, 3)) == 0 and data:
        i = draw(st.integers(0, len(data) - 1))
        data = data[:i] + draw(st.binary(max_size=4)) + data[i + 1 :]
    return text, data
