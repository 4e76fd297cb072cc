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

# Trap images are large on purpose; a 100-megapixel limit still stops decompression bombs.
MAX_PIXELS = 400_000_000


def decode_image(image_id: int, path: str, *, max_side: int | None = None,
                 full_resolution: bool = True, pin_memory: bool = False,
                 expected_size: tuple[int | None, int | None] | None = None) -> DecodedImage:
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(path) as im:
                width, height = im.size
                if width * height > MAX_PIXELS:
                    raise ValueError(f"image is too large ({width}x{height} pixels)")
                if not full_resolution and max_side and max(width, height) > max_side:
                    f = max_side / max(width, height)
                    im.draft("RGB", (max(1, int(width * f)), max(1, int(height * f))))
                im = im.convert("RGB")
                array = np.asarray(im)
    except FileNotFoundError:
        return _failed(image_id, path, width_height(expected_size), "the file no longer exists")
    except PermissionError:
        return _failed(image_id, path, width_height(expected_size), "permission denied")
    except UnidentifiedImageError:
        return _failed(image_id, path, width_height(expected_size), "not an image Pillow can read")
    except (OSError, ValueError, SyntaxError, Image.DecompressionBombWarning,
            Image.DecompressionBombError) as exc:
        return _failed(image_id, path, width_height(expected_size),
                       f"the image cannot be decoded ({exc})")
    except MemoryError:
        return _failed(image_id, path, width_height(expected_size), "not enough memory to decode it")
    with warnings.catch_warnings():
        # Pillow's array is read-only; nothing writes into it (the processor converts first).
        warnings.simplefilter("ignore", UserWarning)
        tensor = torch.from_numpy(array).permute(2, 0, 1)
    if pin_memory:
        pinned = torch.empty(tensor.shape, dtype=torch.uint8).pin_memory()
        tensor = pinned.copy_(tensor)
    scale = tensor.shape[1] / height
    return DecodedImage(image_id, path, tensor, (width, height), scale)


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
