"""Badge images: one generated per achievement, and baked copies that carry the credential.

The catalog has no badge artwork, so each achievement gets a plain, high-contrast image drawn
from its name (white text on a dark ring, contrast well above WCAG AA), the same bytes every
time for the same name. Baking follows the Open Badges specifications: one uncompressed PNG
`iTXt` chunk, keyword `openbadgecredential` holding the Open Badges 3.0 credential JSON, or
keyword `openbadges` holding the Open Badges 2.0 assertion JSON. Pillow writes and reads the
chunks.
"""

from __future__ import annotations

import hashlib
import io
import json
import textwrap
from functools import lru_cache

from PIL import Image, ImageDraw, ImageFont, PngImagePlugin

OB3_KEYWORD = "openbadgecredential"
OB2_KEYWORD = "openbadges"
SIZE = 400
# Dark tones: white text on each has a contrast ratio above 7:1 (WCAG AAA for large text).
RING_COLOURS = ("#0b3d6b", "#1e4d2b", "#5b1a3a", "#3b2a6b", "#5a3a00", "#0f4c4c")


def _colour(name: str) -> str:
    digest = hashlib.sha256(name.encode()).digest()
    return RING_COLOURS[digest[0] % len(RING_COLOURS)]


@lru_cache(maxsize=256)
def badge_image(name: str, subtitle: str = "Micro-credential") -> bytes:
    """A PNG badge for an achievement: a ring in a colour chosen by the name, the name in
    the middle (wrapped), and a subtitle."""
    image = Image.new("RGBA", (SIZE, SIZE), (255, 255, 255, 0))
    draw = ImageDraw.Draw(image)
    colour = _colour(name)
    draw.ellipse((8, 8, SIZE - 8, SIZE - 8), fill=colour)
    draw.ellipse((28, 28, SIZE - 28, SIZE - 28), outline="#ffffff", width=4)
    lines = textwrap.wrap(name, width=14)[:4] or [name[:14]]
    font = ImageFont.load_default(size=40 if len(lines) <= 2 else 32)
    small = ImageFont.load_default(size=22)
    heights = [draw.textbbox((0, 0), line, font=font)[3] for line in lines]
    total = sum(heights) + 8 * (len(lines) - 1)
    y = (SIZE - total) / 2 - 12
    for line, height in zip(lines, heights, strict=True):
        draw.text((SIZE / 2, y), line, font=font, fill="#ffffff", anchor="ma")
        y += height + 8
    draw.text((SIZE / 2, y + 18), subtitle, font=small, fill="#ffffff", anchor="ma")
    out = io.BytesIO()
    image.save(out, format="PNG", optimize=True)
    return out.getvalue()


def bake(png: bytes, keyword: str, payload: dict | str) -> bytes:
    """The PNG with `payload` in one uncompressed iTXt chunk named `keyword` (any chunk of
    the same keyword already there is dropped: a baked image carries one credential)."""
    text = payload if isinstance(payload, str) else json.dumps(payload, separators=(",", ":"))
    source = Image.open(io.BytesIO(png))
    info = PngImagePlugin.PngInfo()
    for key, value in getattr(source, "text", {}).items():
        if key not in (OB3_KEYWORD, OB2_KEYWORD):
            info.add_text(key, value)
    info.add_itxt(keyword, text, zip=False)
    out = io.BytesIO()
    source.save(out, format="PNG", pnginfo=info)
    return out.getvalue()


def read_baked(png: bytes, keyword: str) -> str | None:
    """The text baked under `keyword`, or None (what a backpack reads)."""
    image = Image.open(io.BytesIO(png))
    image.load()
    value = image.text.get(keyword)  # type: ignore[attr-defined]
    return str(value) if value is not None else None
