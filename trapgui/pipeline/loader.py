"""The decode pool: reads and decodes the next batch's images while the device works.

Orientation: boxes are stored in the pixel grid of the file as stored, the same grid whose
width/height the scanner recorded (``Image.width``/``height`` without EXIF rotation), so the
decoder does not apply EXIF orientation either. Viewers that auto-rotate must rotate boxes too.

Resolution: when no classifier needs crops, JPEGs are decoded at reduced size with Pillow's
``draft`` (DCT scaling: 2-4x less work) down to the detector's working size; when crops are
needed the image is decoded once at full resolution and reduced on the device for detection
(see docs/engine.md for the measurement behind this choice).

A file that cannot be read or decoded becomes a ``DecodedImage`` with ``error`` set: the
processor turns it into a failed result with that reason, the run goes on.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass

import numpy as np
import torch
from PIL import Image, UnidentifiedImageError

from trapgui.pipeline.processor import DecodedImage
from trapgui.scan.pixel_limit import ImageTooLarge, open_image


# Pillow's pixel buffer is read-only, and torch warns (once per process) when it wraps one.
# Nothing writes into a decoded tensor (the processor converts it first), and copying every
# image to silence a warning would cost a full image of memory per decode thread; so the one
# warning is filtered once, here, at import, never per decode (``catch_warnings`` in decode
# threads is not thread-safe: it once left an ``error`` filter behind for the whole process).
warnings.filterwarnings("ignore", message="The given NumPy array is not writable",
                        category=UserWarning)


def decode_image(image_id: int, path: str, *, max_side: int | None = None,
                 full_resolution: bool = True, pin_memory: bool = False,
                 expected_size: tuple[int | None, int | None] | None = None) -> DecodedImage:
    known = width_height(expected_size)
    try:
        with open_image(path) as im:  # refuses images above the pixel limit, header only
            width, height = im.size
            if not full_resolution and max_side and max(width, height) > max_side:
                f = max_side / max(width, height)
                im.draft("RGB", (max(1, int(width * f)), max(1, int(height * f))))
            array = rgb_array(im)
    except FileNotFoundError:
        return _failed(image_id, path, known, "the file no longer exists")
    except PermissionError:
        return _failed(image_id, path, known, "permission denied")
    except UnidentifiedImageError:
        return _failed(image_id, path, known, "not an image Pillow can read")
    except ImageTooLarge as exc:
        return _failed(image_id, path, known, str(exc))
    except (OSError, ValueError, SyntaxError, EOFError) as exc:
        return _failed(image_id, path, known, f"the image cannot be decoded ({exc})")
    except MemoryError:
        return _failed(image_id, path, known, "not enough memory to decode it")
    tensor = torch.from_numpy(array).permute(2, 0, 1)
    if pin_memory:
        pinned = torch.empty(tensor.shape, dtype=torch.uint8).pin_memory()
        tensor = pinned.copy_(tensor)
    scale = tensor.shape[1] / height
    return DecodedImage(image_id, path, tensor, (width, height), scale)


def rgb_array(im: Image.Image) -> np.ndarray:
    """The pixels as uint8 (h, w, 3), in the stored grid (no EXIF rotation).

    Pillow's ``convert("RGB")`` clips deeper images (a 16-bit TIFF becomes solid white), so
    they are reduced to 8 bits here: 16-bit (``I;16*``) as value * 255 / 65535; 32-bit integer
    (``I``) and float (``F``) by the range their values occupy: 0-1 (float), 0-255, 0-65535,
    else the image's own minimum to maximum. Alpha is ignored (the colour channels as stored);
    CMYK, palette, grayscale and 1-bit images go through Pillow's conversion."""
    mode = im.mode
    if mode == "RGB":
        return np.asarray(im)
    if mode.startswith("I;16") or mode in ("I", "F"):
        gray = _gray_to_uint8(np.asarray(im), mode)
        return np.repeat(gray[:, :, np.newaxis], 3, axis=2)
    if mode in ("P", "PA"):
        # alpha is ignored anyway; without this Pillow warns about byte-wise transparency
        im.info.pop("transparency", None)
    return np.asarray(im.convert("RGB"))


def _gray_to_uint8(a: np.ndarray, mode: str) -> np.ndarray:
    if mode.startswith("I;16"):
        return ((a.astype(np.uint32) + 128) // 257).astype(np.uint8)
    values = np.nan_to_num(a.astype(np.float32), nan=0.0, posinf=0.0, neginf=0.0)
    lo, hi = (float(values.min()), float(values.max())) if values.size else (0.0, 0.0)
    offset, gain = 0.0, 1.0
    if mode == "F" and lo >= 0 and hi <= 1:
        gain = 255.0
    elif lo >= 0 and hi <= 255:
        pass
    elif lo >= 0 and hi <= 65535:
        gain = 255.0 / 65535.0
    elif hi > lo:
        offset, gain = lo, 255.0 / (hi - lo)
    else:
        return np.zeros(values.shape, np.uint8)
    values -= offset
    values *= gain
    return np.clip(np.rint(values), 0, 255).astype(np.uint8)


def width_height(size) -> tuple[int, int]:
    if size and size[0] and size[1]:
        return int(size[0]), int(size[1])
    return 0, 0


def _failed(image_id: int, path: str, size: tuple[int, int], reason: str) -> DecodedImage:
    return DecodedImage(image_id, path, None, size, 1.0, error=f"Unreadable image: {reason}.")


@dataclass(frozen=True)
class Decoder:
    """How a run decodes its images: the resolution its processors need, pinned memory for
    GPUs. Called from decode threads (the loader pool, remote download threads)."""

    max_side: int | None = None
    full_resolution: bool = True
    pin_memory: bool = False

    @classmethod
    def for_processors(cls, processors, *, pin_memory: bool = False) -> "Decoder":
        processors = list(processors) if not hasattr(processors, "needs_full_resolution") \
            else [processors]
        return cls(max_side=processors[0].detection_max_side,
                   full_resolution=any(p.needs_full_resolution for p in processors),
                   pin_memory=pin_memory)

    def __call__(self, image_id: int, path: str,
                 expected_size: tuple[int | None, int | None] | None = None) -> DecodedImage:
        return decode_image(image_id, path, max_side=self.max_side,
                            full_resolution=self.full_resolution, pin_memory=self.pin_memory,
                            expected_size=expected_size)


class ImageLoader:
    """A pool of decode threads shared by all device workers of a run."""

    def __init__(self, decoder: Decoder, threads: int = 2,
                 initializer: Callable[[], None] | None = None):
        self.decoder = decoder
        self._pool = ThreadPoolExecutor(max_workers=max(1, threads),
                                        thread_name_prefix="trapgui-decode",
                                        initializer=initializer)

    def submit(self, image_id: int, path: str,
               expected_size: tuple[int | None, int | None] | None = None, *,
               on_start: Callable[[], None] | None = None,
               on_end: Callable[[], None] | None = None) -> Future:
        """Decode in the pool; ``on_start``/``on_end`` run on the decode thread around it (the
        flight recorder notes what is being decoded)."""
        if on_start is None and on_end is None:
            return self._pool.submit(self.decoder, image_id, path, expected_size)

        def decode() -> DecodedImage:
            if on_start is not None:
                on_start()
            try:
                return self.decoder(image_id, path, expected_size)
            finally:
                if on_end is not None:
                    on_end()

        return self._pool.submit(decode)

    def close(self) -> None:
        self._pool.shutdown(wait=True, cancel_futures=True)
