"""The one limit on an image's size, shared by the scanner, the decoder and remote downloads.

Trap cameras write 4K to 8K images (8 to 33 megapixels) and DSLRs up to about 60 megapixels; a
100-megapixel image needs 300 MB decoded (RGB, 8 bits), several of which are in memory at once
while a batch is decoded ahead. Above the limit an image is refused with the reason, before
any pixel is decoded, so a file that declares absurd dimensions (a "decompression bomb") cannot
exhaust memory. Pillow's own check is set to the same number (see ``scan.pixel_limit``).
"""

from __future__ import annotations

MAX_IMAGE_PIXELS = 100_000_000


def megapixels(pixels: int) -> str:
    value = pixels / 1e6
    return f"{value:.0f}" if value >= 10 else f"{value:.1f}"


def too_large_reason(width: int, height: int, limit: int = MAX_IMAGE_PIXELS) -> str | None:
    """The reason an image of this size is refused, or None when it is within the limit."""
    pixels = int(width) * int(height)
    if pixels <= limit:
        return None
    return (f"the image is too large: {megapixels(pixels)} megapixels ({width}x{height}), "
            f"the limit is {megapixels(limit)}")


def far_too_large_reason(limit: int = MAX_IMAGE_PIXELS) -> str:
    """For an image Pillow refused outright (more than twice the limit) before we saw its size."""
    return (f"the image is too large: more than {megapixels(2 * limit)} megapixels, the limit "
            f"is {megapixels(limit)}")
