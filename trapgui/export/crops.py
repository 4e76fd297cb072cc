"""The best crop of every individual, cut from the original photograph, for an expert to name.

Layout of the folder (docs/exports.md)::

    crops/
      Noctua pronuba/vermont_2022-06-21_0004_occ123.jpg
      _not identified/vermont_2022-06-21_2231_occ131.jpg
      index.csv        one row per crop: file, occurrence id, trap, night, label, box...
      about.json       thresholds, models, app version

A crop's folder is its taxon (the final label when it counts at the classification threshold,
else ``_not identified``); its name says trap, night, time (HHMM, camera clock) and ends with
the occurrence id, which is how it maps back to the catalogue (``index.csv`` has the rest).
Crops are cut with Pillow from the original image (never a thumbnail), with a margin of the
box's size around it, and saved as JPEG quality 95. Fixtures are left out.
"""

from __future__ import annotations

import json
from pathlib import Path

from PIL import Image as PILImage
from PIL import UnidentifiedImageError

from trapgui.core.errors import UserInputError
from trapgui.db import export_queries as q
from trapgui.db.final_labels import LabelResolver
from trapgui.export.about import build_about
from trapgui.export.atomic import CsvWriter, atomic_folder, check_folder_target, number
from trapgui.export.common import ExportResult, ExportRun, safe_name

NOT_IDENTIFIED_FOLDER = "_not identified"
INDEX_COLUMNS = [
    "file", "occurrence_id", "trap", "night", "taxon", "label_rank", "label_score",
    "classification_method", "identified_by", "machine_label", "machine_score", "first_seen",
    "last_seen", "detections", "best_detection_id", "detection_score", "image", "x1", "y1",
    "x2", "y2", "crop_x1", "crop_y1", "crop_x2", "crop_y2"]
JPEG_QUALITY = 95


def export_crops(run: ExportRun, out: str | Path, margin: float = 0.1) -> ExportResult:
    if not 0.0 <= margin <= 2.0:
        raise UserInputError(f"The crop margin must be between 0 and 2 (a fraction of the box "
                             f"size), not {margin}.")
    out = check_folder_target(out)
    run.require_results()
    total = q.count_rows(run.db, q.occurrence_select(run.scope, run.pipeline_id,
                                                     run.thresholds.detection))
    if not total:
        raise UserInputError("Nothing to export: the selection has no individuals yet (run "
                             "tracking after processing).")
    rows = {"crops": 0}
    failures: list[str] = []
    folders: dict[str, str] = {}  # taxon label -> folder name (unique ignoring case)
    with atomic_folder(out) as tmp, run.db.session() as s:
        resolver = LabelResolver(s)
        with open(tmp / "index.csv", "w", encoding="utf-8", newline="") as fh:
            index = CsvWriter(fh)
            index.header(INDEX_COLUMNS)
            source = _Source()
            done = 0
            result = q.occurrence_rows(s, run.scope, run.pipeline_id, run.thresholds.detection,
                                       by_best_image=True)
            for part in result.partitions():
                for r in part:
                    written = _crop_one(run, r, resolver, source, tmp, folders, margin, index,
                                        failures)
                    rows["crops"] += written
                done += len(part)
                run.progress(done, total, "individuals", "Cutting crops")
                run.check_cancel()
            source.close()
        if failures:
            run.note(f"{len(failures):,} crops could not be cut: " + "; ".join(failures[:3])
                     + (" ..." if len(failures) > 3 else ""))
        about = build_about(run.db, "crops", run.scope, run.pipeline_id, run.thresholds,
                            counts_individuals=True)
        about.update(margin=margin, jpeg_quality=JPEG_QUALITY, rows=dict(rows),
                     notes=list(run.notes))
        (tmp / "about.json").write_text(json.dumps(about, indent=2, ensure_ascii=False,
                                                   default=str) + "\n", encoding="utf-8")
    return ExportResult("crops", out, rows, out / "about.json", tuple(run.notes))


class _Source:
    """The image being cut (occurrences come grouped by their best image: decoded once)."""

    def __init__(self):
        self.path: Path | None = None
        self.image: PILImage.Image | None = None
        self.error: str | None = None

    def get(self, path: Path) -> PILImage.Image:
        if path != self.path:
            self.close()
            self.path = path
            try:
                with PILImage.open(path) as im:
                    self.image = im.convert("RGB")
                self.error = None
            except (OSError, UnidentifiedImageError, ValueError) as exc:
                self.image, self.error = None, f"{path.name}: {exc}"
        if self.image is None:
            raise OSError(self.error)
        return self.image

    def close(self) -> None:
        if self.image is not None:
            self.image.close()
        self.image = None
        self.path = None


def _crop_one(run: ExportRun, r, resolver, source: _Source, folder: Path, folders: dict,
              margin: float, index: CsvWriter, failures: list) -> int:
    if r.best_detection_id is None or r.best_rel_path is None:
        failures.append(f"individual {r.id} has no best detection")
        return 0
    trap = run.traps[r.deployment_id]
    label = resolver.resolve(r)
    accepted = label.accepted(run.thresholds.label)
    name = _folder_for(label.label if accepted else None, folders)
    when = r.best_captured_at
    stamp = when.strftime("%H%M") if when else "undated"
    file = f"{safe_name(trap.name, 'trap', 40)}_{r.date.isoformat()}_{stamp}_occ{r.id}.jpg"
    try:
        image = source.get(Path(trap.path, r.best_rel_path))
        box = _with_margin(r.x1, r.y1, r.x2, r.y2, margin, image.width, image.height)
        (folder / name).mkdir(exist_ok=True)
        image.crop(box).save(folder / name / file, "JPEG", quality=JPEG_QUALITY)
    except OSError as exc:
        failures.append(str(exc))
        return 0
    index.row([f"{name}/{file}", r.id, trap.name, r.date.isoformat(),
               label.label if accepted else None, label.rank if accepted else None,
               number(label.score, 6), label.method if label.label else None,
               label.identified_by, label.machine_label, number(label.machine_score, 6),
               _t(r.first_seen), _t(r.last_seen), r.detections, r.best_detection_id,
               number(r.best_detection_score, 6), r.best_rel_path, number(r.x1, 2),
               number(r.y1, 2), number(r.x2, 2), number(r.y2, 2), *box])
    return 1


def _t(when) -> str | None:
    return when.isoformat(timespec="seconds") if when else None


def _folder_for(label: str | None, folders: dict) -> str:
    if label is None:
        return NOT_IDENTIFIED_FOLDER
    if label not in folders:
        base = safe_name(label, "unnamed")
        taken = {v.casefold() for v in folders.values()} | {NOT_IDENTIFIED_FOLDER.casefold()}
        name, n = base, 2
        while name.casefold() in taken:  # two labels that only differ in case or symbols
            name, n = f"{base} ({n})", n + 1
        folders[label] = name
    return folders[label]


def _with_margin(x1, y1, x2, y2, margin, width, height) -> tuple[int, int, int, int]:
    """The box grown by ``margin`` times its size on each side, in whole pixels, clipped."""
    mx, my = (x2 - x1) * margin, (y2 - y1) * margin
    left = max(0, int(x1 - mx))
    top = max(0, int(y1 - my))
    right = min(width, max(left + 1, int(round(x2 + mx))))
    bottom = min(height, max(top + 1, int(round(y2 + my))))
    return left, top, right, bottom
