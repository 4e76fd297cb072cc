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


# ---- an app set up as a user has it: data and settings folders, models installed ----------
import json  # noqa: E402
import os  # noqa: E402
import shutil  # noqa: E402
import subprocess  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402

REPO = Path(__file__).resolve().parent.parent


def copy_trap(dst: Path, n: int) -> list[Path]:
    """``n`` copies of the shared 4096x2160 trap images (cycling), unique names."""
    sources = trap_images()
    dst.mkdir(parents=True, exist_ok=True)
    out = []
    for i in range(n):
        src = sources[i % len(sources)]
        target = dst / f"{i:04d}-{src.name}"
        shutil.copy2(src, target)
        out.append(target)
    return out


def app_env(root: Path) -> dict:
    env = dict(os.environ)
    env.update(TRAPGUI_DATA_DIR=str(root / "data"), TRAPGUI_CONFIG_DIR=str(root / "config"),
               PYTHONPATH=str(REPO))
    env.pop("TRAPGUI_DB", None)
    return env


def set_up_app(root: Path, weights: str | Path, *, device: str = "cpu", **settings) -> None:
    """Settings as shipped except the three models (and ``settings``), weights installed."""
    from trapgui.ml.store import ModelStore

    (root / "config").mkdir(parents=True, exist_ok=True)
    values = {"detector": DETECTOR, "binary_classifier": BINARY, "species_classifier": SPECIES,
              "device": device, **settings}
    (root / "config" / "settings.json").write_text(json.dumps(values, indent=1))
    install_bench_weights(ModelStore(root / "data" / "models"), weights)


def trapgui_process(root: Path, folder: Path, *args: str) -> tuple[float, str]:
    """``trapgui process FOLDER`` in a new process, as a user runs it; (wall seconds, output)."""
    cmd = [sys.executable, "-m", "trapgui", "process", str(folder), "--quiet", *args]
    t = time.perf_counter()
    done = subprocess.run(cmd, env=app_env(root), capture_output=True, text=True)
    wall = time.perf_counter() - t
    if done.returncode != 0:
        raise SystemExit(f"trapgui process failed ({done.returncode}):\n{done.stdout}\n{done.stderr}")
    return wall, done.stdout + done.stderr


def load_average() -> str:
    try:
        return " ".join(Path("/proc/loadavg").read_text().split()[:3])
    except OSError:
        return "?"
