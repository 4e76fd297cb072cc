"""The review grid's cached tiles (``ReviewDelegate``): a tile is drawn anew when its row or
crop changes or the look changes, and reused when only the cursor or the selection moves. Real
widgets rendered offscreen; what is compared is the pixels the grid shows."""

from __future__ import annotations

import dataclasses
import datetime as dt

import pytest
from PySide6.QtGui import QColor, QImage, QPalette, QPixmap

from trapgui.db.review_queries import ReviewRow


def _row(i: int, state: str | None = None) -> ReviewRow:
    return ReviewRow(i, 1, 1, "Noctua pronuba", "species", 0.8, state,
                     "Noctua pronuba" if state else None, "species" if state else None,
                     "Kim" if state else None, None, dt.datetime(2022, 7, 1, 22, 0, i), 3, 0.9,
                     False, False, 100 + i, 1, "/nowhere/frame.jpg", (0.0, 0.0, 10.0, 10.0))


@pytest.fixture
def grid(qtbot):
    from trapgui.gui.review_grid import ReviewGrid
    from trapgui.gui.review_model import ReviewModel

    g = ReviewGrid()
    model = ReviewModel(g)
    g.setModel(model)
    model.set_rows([_row(i) for i in range(6)])
    for i in range(6):  # every crop there already: nothing is asked off the GUI thread
        crop = QPixmap(120, 90)
        crop.fill(QColor(120, 90, 60))
        model.set_crop(100 + i, crop)
    qtbot.addWidget(g)
    g.resize(700, 500)
    g.show()
    qtbot.waitExposed(g)
    return g


def _tile_image(grid, row: int) -> QImage:
    grid.viewport().repaint()
    return grid.viewport().grab(grid.visualRect(grid.model().index(row))).toImage()


def test_a_changed_row_is_drawn_anew(grid):
    before = _tile_image(grid, 0)
    grid.model().update_rows([_row(0, "confirmed")])
    after = _tile_image(grid, 0)
    assert after != before  # the green band and "✓ confirmed"
    assert _tile_image(grid, 1) == _tile_image(grid, 1)


def test_the_cursor_and_selection_reuse_the_tiles(grid):
    delegate = grid.itemDelegate()
    grid.setCurrentIndex(grid.model().index(0))
    _tile_image(grid, 0)
    drawn = dict(delegate._tiles)
    plain = _tile_image(grid, 2)
    grid.setCurrentIndex(grid.model().index(2))  # current and selected now
    current = _tile_image(grid, 2)
    assert current != plain  # the cursor and the selection are drawn around the tile
    assert delegate._tiles.keys() == drawn.keys()  # nothing drawn anew


def test_a_new_crop_is_drawn_anew(grid):
    before = _tile_image(grid, 3)
    crop = QPixmap(120, 90)
    crop.fill(QColor(20, 160, 40))
    grid.model().set_crop(103, crop)
    assert _tile_image(grid, 3) != before


def test_a_palette_change_draws_every_tile_anew(grid):
    before = _tile_image(grid, 4)
    palette = grid.palette()
    palette.setColor(QPalette.ColorRole.Text, QColor("#d81b60"))
    palette.setColor(QPalette.ColorRole.PlaceholderText, QColor("#d81b60"))
    grid.setPalette(palette)
    after = _tile_image(grid, 4)
    assert after != before  # the labels in the new colour, not the cached old ones


def test_the_cache_stays_within_its_budget(grid, monkeypatch):
    from trapgui.gui import review_delegate

    monkeypatch.setattr(review_delegate, "TILE_CACHE_BYTES", 1)
    delegate = grid.itemDelegate()
    delegate.forget_look()
    for k in range(6):
        grid.model().update_rows([dataclasses.replace(_row(k), n_detections=k + 10)])
        _tile_image(grid, k)
    assert len(delegate._tiles) == 1  # only the latest (the budget is below one tile)
