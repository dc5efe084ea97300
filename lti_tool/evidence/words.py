"""Words as the confidentiality and similarity checks compare them.

Why one place: both checks must split and fold text the same way, so that a name or a copied
sentence is found whatever its case, accents or punctuation.
"""

from __future__ import annotations

import re
import unicodedata

# Runs of letters and digits: "Jean-Luc", "O'Brien" and "ada_lovelace" split in two.
WORD = re.compile(r"[^\W_]+")


def fold(word: str) -> str:
    """A word as matching sees it: lower case, without accents ("Éloïse" -> "eloise")."""
    if word.isascii():
        return word.lower()
    decomposed = unicodedata.normalize("NFKD", word)
    return "".join(c for c in decomposed if not unicodedata.combining(c)).casefold()


def normalized(text: str) -> str:
    """Composed form (NFC), so an accent typed as a separate mark stays inside its word."""
    return unicodedata.normalize("NFC", text)


def spans(text: str) -> list[tuple[int, int, str]]:
    """(start, end, word as written) of each word of an already normalized text."""
    return [(m.start(), m.end(), m.group()) for m in WORD.finditer(text)]


def words_of(text: str) -> list[str]:
    """The folded words of a text."""
    if text.isascii():  # most names and texts: no accents to fold
        return WORD.findall(text.lower())
    return [fold(match.group()) for match in WORD.finditer(normalized(text))]
