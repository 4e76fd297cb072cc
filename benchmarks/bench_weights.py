"""Realistic benchmark weights (made with ../shared/bench-weights/, see its README) installed
into a trapgui model store, the way a user installs files copied from another computer
(``ModelStore.import_file``: checked, strict load).

    --weights DIR   a folder holding the files make_category_maps.py / make_weights.py wrote
"""

from __future__ import annotations

from pathlib import Path

DETECTOR = "fasterrcnn_mobilenet_v3_2023"
BINARY = "moth_binary_resnet50_2024"
SPECIES = "quebec_vermont_resnet50_2024"

FILES = {  # catalogue key -> (weights file, label map or None), as published
    DETECTOR: ("fasterrcnn_mobilenet_v3_large_fpn_uqfh7u9w.pt", None),
    BINARY: ("moth-nonmoth_resnet50_20240417_b4fe3efe.pth", "05-moth-nonmoth_category_map.json"),
    SPECIES: ("quebec-vermont_resnet50_baseline_20240417_950de764.pth",
              "01_ami-gbif_fine-grained_ne-america_category_map-with_names.json"),
}
SHARED = Path(__file__).resolve().parent.parent.parent / "shared"
TRAP_IMAGES = SHARED / "trap-images"


def install_bench_weights(store, folder: str | Path, keys=tuple(FILES)) -> list[str]:
    """Import the weights of ``keys`` from ``folder`` into ``store``; returns the keys."""
    folder = Path(folder)
    missing = [FILES[k][0] for k in keys if not (folder / FILES[k][0]).is_file()]
    if missing:
        raise SystemExit(f"{folder} lacks {', '.join(missing)}: make them with "
                         f"{SHARED / 'bench-weights'} (see its README).")
    for key in keys:
        weights, labels = FILES[key]
        store.import_file(key, folder / weights, folder / labels if labels else None)
    return list(keys)


def trap_images(limit: int | None = None, *, full_size_only: bool = True) -> list[Path]:
    """The shared trap images (the 4096x2160 ones unless ``full_size_only`` is False)."""
    files = sorted(p for p in TRAP_IMAGES.rglob("*") if p.suffix.lower() in (".jpg", ".jpeg"))
    if full_size_only:
        files = [p for p in files if "DSLR" not in p.parts]
    return files[:limit] if limit else files
