"""JSON-LD with the contexts bundled in this package, and never the network.

Signing and verifying canonicalize documents (RDF Dataset Canonicalization, URDNA2015 /
RDFC-1.0), which needs every `@context` a document names. A verifier that fetched them could be
fed a changed context, and an issuer that fetched them would stop when a site is down, so the
loader serves the copies in `contexts/` (see contexts/README.md for where they come from) and
refuses any other URL.
"""

from __future__ import annotations

import json
from functools import cache
from pathlib import Path

from pyld import jsonld

CONTEXTS_DIR = Path(__file__).resolve().parent / "contexts"

CREDENTIALS_V2 = "https://www.w3.org/ns/credentials/v2"
OB_V3 = "https://purl.imsglobal.org/spec/ob/v3p0/context-3.0.3.json"
DATA_INTEGRITY_V2 = "https://w3id.org/security/data-integrity/v2"
BITSTRING_STATUS_V1 = "https://www.w3.org/ns/credentials/status/v1"
MULTIKEY_V1 = "https://w3id.org/security/multikey/v1"
DID_V1 = "https://www.w3.org/ns/did/v1"

# URL -> file in contexts/: contexts/index.json, which the test verifier (tests/verifier) reads too.
BUNDLED: dict[str, str] = json.loads((CONTEXTS_DIR / "index.json").read_text(encoding="utf-8"))


class ContextNotBundled(ValueError):
    """A document names a context this package does not carry; it is never fetched."""


@cache
def bundled_context(url: str) -> dict:
    """The bundled JSON document of a context URL."""
    name = BUNDLED.get(url)
    if name is None:
        raise ContextNotBundled(
            f"the JSON-LD context {url} is not bundled with the tool (and is never fetched)"
        )
    return json.loads((CONTEXTS_DIR / name).read_text(encoding="utf-8"))


def document_loader(url: str, options: dict | None = None) -> dict:
    """pyld document loader: bundled contexts only, no network."""
    try:
        document = bundled_context(url)
    except ContextNotBundled as exc:
        raise jsonld.JsonLdError(
            str(exc), "jsonld.LoadDocumentError", code="loading document failed"
        ) from None
    # tag "static": pyld then keeps the processed context between calls (by URL).
    return {"contextUrl": None, "documentUrl": url, "document": document, "tag": "static"}


def canonize(document: dict) -> str:
    """The canonical N-Quads of a JSON-LD document (URDNA2015, the algorithm RDFC-1.0 names)."""
    return jsonld.normalize(
        document,
        {
            "algorithm": "URDNA2015",
            "format": "application/n-quads",
            "documentLoader": document_loader,
        },
    )
