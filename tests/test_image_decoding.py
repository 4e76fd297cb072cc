"""Decoding every pixel format a trap folder can hold, and the one pixel limit shared by the
scanner, the engine's decoder and the remote downloader."""

from __future__ import annotations

import functools
import http.server
import threading
import warnings
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from tests.bad_input_corpus import _tiff_from_array, gradient16, jpeg_declaring, png_declaring
from trapgui.core.image_limits import MAX_IMAGE_PIXELS, too_large_reason
from trapgui.remote.address_policy import AddressPolicy
from trapgui.pipeline.loader import Decoder, ImageLoader, decode_image
from trapgui.scan.files import FoundFile, probe_file


def _decode(path: Path, **kw):
    out = decode_image(1, str(path), **kw)
    assert out.error is None, out.error
    return out.tensor.permute(1, 2, 0).numpy()


# --- deep and unusual pixel formats -------------------------------------------------------------

@pytest.mark.parametrize("mode, dtype", [("I;16", "<u2"), ("I;16B", ">u2")])
def test_16_bit_tiffs_are_scaled_not_clipped_to_white(tmp_path, mode, dtype):
    values = gradient16()
    path = tmp_path / "deep.tif"
    path.write_bytes(_tiff_from_array(values.astype(dtype), mode))
    with Image.open(path) as im:
        assert im.mode == mode
    rgb = _decode(path)
    expected = np.round(values / 257.0)
    assert rgb.shape == (*values.shape, 3) and rgb.dtype == np.uint8
    assert np.abs(rgb[:, :, 0].astype(int) - expected).max() <= 1
    assert (rgb[:, :, 0] == rgb[:, :, 2]).all()
    assert rgb.min() == 0 and rgb.max() == 255 and 120 < rgb.mean() < 135  # not solid white


def test_32_bit_integer_and_float_tiffs_follow_the_range_of_their_values(tmp_path):
    values = gradient16()
    cases = {
        "int 0-65535": (values.astype("<i4"), "I", np.round(values / 257.0)),
        "int 0-255": ((values // 257).astype("<i4"), "I", values // 257),
        "int signed": ((values.astype(np.int64) - 40000).astype("<i4"), "I",
                       np.round((values / 65535.0) * 255)),
        "float 0-1": ((values / 65535).astype("<f4"), "F", np.round(values / 65535 * 255)),
        "float 0-65535": (values.astype("<f4"), "F", np.round(values / 257.0)),
    }
    for name, (array, mode, expected) in cases.items():
        path = tmp_path / f"{name}.tif"
        path.write_bytes(_tiff_from_array(array, mode))
        rgb = _decode(path)
        assert np.abs(rgb[:, :, 1].astype(int) - expected).max() <= 1, name


@pytest.mark.parametrize("make", [
    lambda: Image.new("CMYK", (40, 30), (0, 128, 255, 30)),
    lambda: Image.new("L", (40, 30), 77),
    lambda: Image.new("LA", (40, 30), (77, 10)),
    lambda: Image.new("1", (40, 30), 1),
    lambda: Image.new("RGBA", (40, 30), (10, 200, 30, 0)),
], ids=["CMYK", "L", "LA", "1-bit", "RGBA"])
def test_other_modes_decode_to_their_colours(tmp_path, make):
    im = make()
    fmt = "JPEG" if im.mode == "CMYK" else ("TIFF" if im.mode == "1" else "PNG")
    path = tmp_path / f"x.{fmt.lower()}"
    im.save(path, fmt)
    with Image.open(path) as reference:
        want = np.asarray(reference.convert("RGB"))
    assert (_decode(path) == want).all()


def test_palette_with_alpha_decodes_its_colours_without_a_warning(tmp_path):
    pal = Image.new("P", (40, 30), 1)
    pal.putpalette([0, 0, 0, 200, 190, 180] + [0] * 762)
    pal.info["transparency"] = bytes([0, 128] + [255] * 254)
    path = tmp_path / "palette.png"
    pal.save(path)
    with warnings.catch_warnings(record=True) as seen:  # main thread, test only
        warnings.simplefilter("always")
        rgb = _decode(path)
    assert (rgb == (200, 190, 180)).all()
    assert not [w for w in seen if "Palette" in str(w.message)]


@pytest.mark.parametrize("orientation", [1, 3, 6, 8])
def test_exif_orientation_is_not_applied_boxes_stay_in_the_stored_grid(tmp_path, orientation):
    """docs/engine.md: no EXIF rotation; the decoded grid is the one the scanner records."""
    exif = Image.Exif()
    exif[0x0112] = orientation
    src = Image.new("RGB", (60, 20), (200, 200, 200))
    src.paste((0, 0, 0), (0, 0, 10, 20))  # dark band on the left, as stored
    path = tmp_path / "oriented.jpg"
    src.save(path, exif=exif, quality=95)
    out = decode_image(1, str(path))
    assert out.error is None and out.orig_size == (60, 20) and tuple(out.tensor.shape) == (3, 20, 60)
    assert out.tensor[:, :, :5].float().mean() < 40 and out.tensor[:, :, -5:].float().mean() > 150
    probe = probe_file(FoundFile("oriented.jpg", str(path), path.stat().st_size, 0.0))
    assert (probe.width, probe.height) == (60, 20)


# --- the pixel limit -----------------------------------------------------------------------------

def test_the_limit_admits_trap_and_dslr_images_and_says_why_it_refuses():
    assert MAX_IMAGE_PIXELS == 100_000_000
    for w, h in ((3840, 2160), (4096, 2160), (7680, 4320), (8192, 5464), (9504, 6336)):
        assert too_large_reason(w, h) is None  # 4K .. 8K traps, a 60 MP DSLR
    assert too_large_reason(10_000, 10_000) is None
    assert too_large_reason(12_000, 10_000) == (
        "the image is too large: 120 megapixels (12000x10000), the limit is 100")
    assert Image.MAX_IMAGE_PIXELS == MAX_IMAGE_PIXELS  # Pillow's own check agrees


@pytest.mark.parametrize("data, reason", [
    (png_declaring(12000, 10000), "the image is too large: 120 megapixels (12000x10000), "
                                  "the limit is 100"),
    (png_declaring(15000, 10000), "the image is too large: 150 megapixels (15000x10000), "
                                  "the limit is 100"),
    (jpeg_declaring(65000, 65000), "the image is too large: more than 200 megapixels, the "
                                   "limit is 100"),
], ids=["120MP", "150MP", "4GP"])
def test_scanner_decoder_and_downloader_refuse_the_same_images_the_same_way(tmp_path, data,
                                                                          reason):
    from trapgui.remote.downloader import DownloadFailed, _check_image

    path = tmp_path / "big.png"
    path.write_bytes(data)
    probe = probe_file(FoundFile("big.png", str(path), len(data), 0.0))
    assert probe.state == "unreadable" and probe.error == reason
    decoded = decode_image(7, str(path))
    assert decoded.tensor is None and decoded.error == f"Unreadable image: {reason}."
    with pytest.raises(DownloadFailed) as err:
        _check_image(path)
    assert str(err.value) == reason[0].upper() + reason[1:] + "."


def test_a_remote_download_above_the_limit_fails_with_the_reason(tmp_path):
    """Over real HTTP: the downloader refuses the image itself (it used to fall through to
    "Unexpected error" with a traceback in the log)."""
    from trapgui.remote.downloader import ImageDownloader

    served = tmp_path / "www"
    served.mkdir()
    (served / "big.png").write_bytes(png_declaring(12000, 10000))
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(served))
    handler.log_message = lambda *a: None
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    url = f"http://127.0.0.1:{server.server_address[1]}/big.png"
    # images from a server on this computer, as the tests' Antenna server hands them out
    downloader = ImageDownloader(threads=1, retries=0, policy=AddressPolicy.for_server(url))
    try:
        result = downloader.fetch("img-1", url, tmp_path / "cache" / "big.png")
    finally:
        downloader.shutdown()
        server.shutdown()
        server.server_close()
    assert result.error == ("The image is too large: 120 megapixels (12000x10000), the limit "
                            "is 100.")
    assert not (tmp_path / "cache" / "big.png").exists()


def test_a_100_megapixel_image_scans_and_decodes(tmp_path):
    """At the limit: it used to scan as fine and then fail as a "decompression bomb"."""
    path = tmp_path / "100mp.jpg"
    Image.new("L", (10_000, 10_000), 200).save(path, quality=50)
    probe = probe_file(FoundFile("100mp.jpg", str(path), path.stat().st_size, 0.0))
    assert probe.state == "ok", probe.error
    reduced = decode_image(1, str(path), max_side=1536, full_resolution=False)
    assert reduced.error is None and reduced.orig_size == (10_000, 10_000)
    full = decode_image(2, str(path))
    assert full.error is None and tuple(full.tensor.shape) == (3, 10_000, 10_000)


def test_decode_threads_leave_the_warning_filters_alone(tmp_path):
    """``warnings.catch_warnings`` in decode threads is not thread-safe: after 20k decodes on 8
    threads an ``error`` filter was left in the process's filters. Decoding (including images
    above the limit, which used to go through that filter) never touches them now."""
    import ast

    import trapgui.pipeline.loader
    import trapgui.remote.downloader
    import trapgui.scan.files
    import trapgui.scan.pixel_limit

    for module in (trapgui.pipeline.loader, trapgui.scan.files, trapgui.scan.pixel_limit,
                   trapgui.remote.downloader):
        tree = ast.parse(Path(module.__file__).read_text(encoding="utf-8"))
        names = {n.attr for n in ast.walk(tree) if isinstance(n, ast.Attribute)}
        names |= {n.id for n in ast.walk(tree) if isinstance(n, ast.Name)}
        assert "catch_warnings" not in names and "simplefilter" not in names, module
    files = []
    for i in range(24):
        path = tmp_path / f"{i}.png"
        if i % 3 == 0:
            path.write_bytes(png_declaring(12000, 10000))
        else:
            Image.new("RGB", (32, 24), (i * 10, 90, 30)).save(path)
        files.append(path)

    before = list(warnings.filters)
    pool = ImageLoader(Decoder(), threads=8)
    try:
        for _ in range(40):
            batch = [f.result() for f in [pool.submit(i, str(p)) for i, p in enumerate(files)]]
            assert sum(d.error is not None for d in batch) == 8
            assert all("too large" in d.error for d in batch if d.error)
    finally:
        pool.close()
    assert warnings.filters == before
    assert not any(f[0] == "error" for f in warnings.filters)
