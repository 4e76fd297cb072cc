"""The review agreement table (``services.review.Agreement``) as a CSV file: per taxon and
overall, then the confusion table (machine label -> the person's label)."""

from __future__ import annotations

import csv
from pathlib import Path

from trapgui.export.atomic import atomic_file, check_file_target
from trapgui.export.csv_export import escape_cell


def write_agreement_csv(rows: list[list], out: str | Path) -> Path:
    """Rows as ``Agreement.csv_rows()`` gives them; written atomically, labels escaped so a
    spreadsheet never runs one as a formula."""
    target = check_file_target(out, (".csv",), "agreement")
    with atomic_file(target) as fh:
        w = csv.writer(fh, lineterminator="\n")
        for row in rows:
            w.writerow([escape_cell(v) if isinstance(v, str) else v for v in row])
    return target
