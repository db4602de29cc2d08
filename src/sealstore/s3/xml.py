"""S3 XML: building response documents and parsing request bodies safely.

Responses are built as strings with explicit escaping (the documents are small and flat,
and string building is several times faster than ElementTree). Request bodies are parsed
with defusedxml's ElementTree parser, which refuses a DTD, an entity declaration or an
external reference from expat's own callbacks, i.e. after the document was decoded: a byte
filter cannot do that, because a UTF-16 (or otherwise encoded) ``<!DOCTYPE`` has no ASCII
bytes to match. Namespaces are ignored because clients differ in sending them.
"""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET
from collections.abc import Iterable
from xml.sax.saxutils import escape as _sax_escape

import defusedxml
import defusedxml.ElementTree as DET

S3_NS = "http://s3.amazonaws.com/doc/2006-03-01/"
XML_DECL = '<?xml version="1.0" encoding="UTF-8"?>\n'
# Request bodies we parse are configuration documents; 1 MiB is far above any legit one
# (DeleteObjects with 1000 long keys is ~1 MiB, so allow a little more for that one).
MAX_XML_BODY = 2 * 1024 * 1024


class MalformedXMLError(ValueError):
    """The request body is not the XML document the operation expects.

    app.py maps it to S3's 400 MalformedXML.
    """


# XML 1.0 cannot carry these even escaped; object keys may contain them.
_XML_INVALID = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ud800-\udfff\ufffe\uffff]")


def escape(text: str) -> str:
    """Escape text for element content and attribute values.

    Characters XML 1.0 forbids outright become U+FFFD so the document stays parseable.
    """
    return _sax_escape(_XML_INVALID.sub("\ufffd", text), {'"': "&quot;"})


def tag(name: str, value: str | int | bool | None) -> str:
    """Render ``<name>value</name>``; None renders nothing, bools as S3's true/false."""
    if value is None:
        return ""
    text = ("true" if value else "false") if isinstance(value, bool) else escape(str(value))
    return f"<{name}>{text}</{name}>"


def wrap(name: str, children: Iterable[str] | str) -> str:
    """Render ``<name>children</name>`` where children are already-rendered fragments."""
    inner = children if isinstance(children, str) else "".join(children)
    return f"<{name}>{inner}</{name}>"


def document(root: str, children: Iterable[str] | str, *, namespace: bool = True) -> bytes:
    """Render a full S3 XML response document with the S3 namespace on the root."""
    inner = children if isinstance(children, str) else "".join(children)
    attr = f' xmlns="{S3_NS}"' if namespace else ""
    return f"{XML_DECL}<{root}{attr}>{inner}</{root}>".encode()


def local_name(element: ET.Element) -> str:
    """Return the tag without its ``{namespace}`` prefix."""
    t = element.tag
    return t.rsplit("}", 1)[-1] if isinstance(t, str) else ""


def parse(data: bytes, expected_root: str | None = None) -> ET.Element:
    """Parse a request body; raise MalformedXMLError for anything unexpected.

    A DOCTYPE, an entity declaration or an external reference is refused by the parser in
    whatever encoding the document uses (no legitimate S3 body has one, and S3 answers
    MalformedXML), which closes entity-expansion and external-entity attacks.
    """
    if len(data) > MAX_XML_BODY:
        raise MalformedXMLError("XML body too large")
    try:
        root = DET.fromstring(data, forbid_dtd=True, forbid_entities=True, forbid_external=True)
    except defusedxml.DefusedXmlException:
        raise MalformedXMLError("DTDs and entities are not allowed in request bodies") from None
    except (ET.ParseError, ValueError, LookupError) as exc:
        # ValueError/LookupError: expat refusing an encoding it cannot decode (e.g. UTF-32).
        raise MalformedXMLError(f"The XML you provided was not well-formed: {exc}") from None
    if expected_root is not None and local_name(root) != expected_root:
        raise MalformedXMLError(f"expected root element {expected_root}, got {local_name(root)}")
    return root


def children(element: ET.Element, name: str) -> list[ET.Element]:
    """Direct children with the given local name (namespace ignored)."""
    return [c for c in element if local_name(c) == name]


def child(element: ET.Element, name: str) -> ET.Element | None:
    """First direct child with the given local name, or None."""
    for c in element:
        if local_name(c) == name:
            return c
    return None


def child_text(element: ET.Element, name: str, default: str | None = None) -> str | None:
    """Text of the first direct child with that local name (``""`` when empty), or default."""
    c = child(element, name)
    if c is None:
        return default
    return c.text or ""


def find_path(element: ET.Element, *names: str) -> ET.Element | None:
    """Follow a chain of child local names, e.g. ``find_path(root, "Rule", "Apply...")``."""
    cur: ET.Element | None = element
    for n in names:
        if cur is None:
            return None
        cur = child(cur, n)
    return cur
