"""The pixel limit (``core.image_limits``) applied to Pillow, the same way wherever an image is
opened: the scanner (headers), the engine's decoder and the remote downloader.

``open_image`` opens a file (reading its header only) and refuses it with
:class:`ImageTooLarge` when it has more pixels than the limit: the reason names its size and the
limit. Pillow's own check (``Image.MAX_IMAGE_PIXELS``) is set to the same limit, once, at
import: it warns above the limit and raises above twice the limit. Its warning is silenced by
one filter installed here, at import, because every trapgui caller refuses such an image itself
with a better sentence; nothing here ever changes warning filters per call (``catch_warnings``
in decoder threads is not thread-safe and once left an ``error`` filter behind for the whole
process). Its error for more than twice the limit becomes the same :class:`ImageTooLarge`.
"""

from __future__ import annotations

import warnings

from PIL import Image

from trapgui.core.image_limits import MAX_IMAGE_PIXELS, far_too_large_reason, too_large_reason


class ImageTooLarge(ValueError):
    """``str(exc)`` is the reason, e.g. "the image is too large: 120 megapixels ..."."""


def configure_pillow() -> None:
    """Make Pillow's limit ours. Idempotent; runs at import of this module."""
    Image.MAX_IMAGE_PIXELS = MAX_IMAGE_PIXELS
    if not any(f[2] is Image.DecompressionBombWarning and f[0] == "ignore"
               for f in warnings.filters):
        warnings.filterwarnings("ignore", category=Image.DecompressionBombWarning)


configure_pillow()


def check_size(width: int, height: int) -> None:
    reason = too_large_reason(width, height)
    if reason:
        raise ImageTooLarge(reason)


def open_image(fp, formats=None) -> Image.Image:
    """``Image.open`` (header only) that refuses images above the pixel limit."""
    try:
        im = Image.open(fp, formats=formats)
    except Image.DecompressionBombError:
        raise ImageTooLarge(far_too_large_reason()) from None
    try:
        check_size(*im.size)
    except ImageTooLarge:
        im.close()
        raise
    return im
