"""What the per-night image counts mean: one partition, said the same way everywhere.

Every image on disk is in exactly one of four groups for the model configuration counted:
``images = processed + failed + unreadable + waiting`` (deleted files are ``missing``, apart).
The query is ``db.catalogue_queries.nights_table``; the trap tree, the nights overview and
``trapgui nights`` show its columns and explain them with these sentences.
"""

from __future__ import annotations

IMAGES = ("Images in the folder now (deleted ones are counted as missing, apart): "
          "processed + failed + unreadable + waiting")
PROCESSED = "Images processed with the current models (each image counts once)"
FAILED = ("Images the models could not process, each with its reason (a photo refused as "
          "not a trap sheet is failed, not processed)")
UNREADABLE = ("Files that cannot be read as images (empty, truncated, not an image, "
              "permission denied, too large): never processed")
WAITING = "Readable images not processed yet (queued, in progress or never started)"
PARTITION = "images = processed + failed + unreadable + waiting"


def breakdown(images: int, processed: int, failed: int, unreadable: int, waiting: int) -> str:
    """``12 images: 8 processed, 1 failed, 1 unreadable, 2 waiting`` (zeros left out)."""
    parts = [f"{n:,} {what}" for n, what in ((processed, "processed"), (failed, "failed"),
                                              (unreadable, "unreadable"), (waiting, "waiting"))
             if n]
    head = f"{images:,} image{'s' if images != 1 else ''}"
    return f"{head}: {', '.join(parts)}" if parts else head
