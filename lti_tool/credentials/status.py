"""Bitstring Status List (W3C): the revocation bits of an issuer's credentials, published.

A list has at least 131,072 entries (16 KB), so that one credential's index tells a verifier
little about which credential it is looking at; indexes are drawn at random. Index 0 is the most
significant bit of the first byte. The published `encodedList` is `u` + base64url (no padding)
of the GZIP-compressed bitstring.
"""

from __future__ import annotations

import base64
import gzip

MIN_ENTRIES = 131_072  # the specification's minimum: 16 KB of bits


def empty(size: int = MIN_ENTRIES) -> bytes:
    if size < MIN_ENTRIES or size % 8:
        raise ValueError(f"a status list holds at least {MIN_ENTRIES} entries, a multiple of 8")
    return bytes(size // 8)


def is_set(bits: bytes, index: int) -> bool:
    return bool(bits[index // 8] & (0x80 >> (index % 8)))


def set_bit(bits: bytes, index: int, value: bool = True) -> bytes:
    data = bytearray(bits)
    mask = 0x80 >> (index % 8)
    if value:
        data[index // 8] |= mask
    else:
        data[index // 8] &= ~mask & 0xFF
    return bytes(data)


def encode(bits: bytes) -> str:
    """The `encodedList` of a bitstring (mtime 0, so equal bits give an equal string)."""
    compressed = gzip.compress(bits, mtime=0)
    return "u" + base64.urlsafe_b64encode(compressed).decode().rstrip("=")


def decode(encoded: str) -> bytes:
    """The bitstring of an `encodedList` (what a verifier does)."""
    if not encoded.startswith("u"):
        raise ValueError("an encodedList is base64url multibase: it starts with 'u'")
    body = encoded[1:]
    return gzip.decompress(base64.urlsafe_b64decode(body + "=" * (-len(body) % 4)))
