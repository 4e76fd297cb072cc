"""The "Carried decisions to check" filter and the grid's marks for carried decisions, with
pytest-qt over a real catalogue: configuration A reviewed, configuration B tracked with the real
tracking job (one decision carried, one left for a person because B splits that insect), the
rows from the real ``services.review``."""

from __future__ import annotations

from PySide6.QtWidgets import QVBoxLayout, QWidget

from tests.test_review_carry import N1, _identities, _one, other_configuration
from tests.tracking_catalogue import add_frames, make_catalogue
from trapgui.db import review_store
from trapgui.pipeline.tracking_job import track_catalogue_nights


def test_the_filter_shows_the_decisions_to_check_and_the_tiles_say_carried(
        qtbot, services, tmp_path):
    from trapgui.gui.review_carry_filter import CarryCheckFilter
    from trapgui.gui.review_grid import ReviewGrid
    from trapgui.gui.review_model import ROW_ROLE, ReviewModel, tooltip

    db = services.db
    cat = make_catalogue(db)
    add_frames(cat, N1, 6, {"moth-a": 0, "moth-b": 1, "moth-c": 2}, fixture=False)
    track_catalogue_nights(db, cat.pipeline_id, [cat.nights[N1]])
    a, c = _one(cat, cat.pipeline_id, "moth-a"), _one(cat, cat.pipeline_id, "moth-c")
    review_store.relabel(db, [a], "Noctua pronuba", "species", "Kim")
    review_store.relabel(db, [c], "Xestia c-nigrum", "species", "Kim")
    other = other_configuration(cat, look=lambda identity, frame: (
        ("c" if frame < 3 else "-c") if identity == "moth-c" else identity))
    track_catalogue_nights(db, other, [cat.nights[N1]])
    parts = _identities(cat, other)["moth-c"]
    assert len(parts) == 2

    rows = services.review.night_rows(other, cat.nights[N1])
    by_id = {r.id: r for r in rows}
    carried = by_id[_one(cat, other, "moth-a")]
    assert (carried.carried_from, carried.final_label, carried.needs_check) == (
        a, "Noctua pronuba", None)
    assert all(by_id[p].needs_check.startswith("Needs a look: the decision from builtin")
               for p in parts)
    assert services.review.needs_check(other)[0].look_at == tuple(sorted(parts))

    box = QWidget()
    qtbot.addWidget(box)
    model = ReviewModel(box)
    grid = ReviewGrid(box)
    grid.setModel(model)
    check = CarryCheckFilter(model, box)
    layout = QVBoxLayout(box)
    layout.addWidget(check)
    layout.addWidget(grid)
    assert not check.isEnabled() and check.text() == "Carried decisions to check (0)"
    model.set_rows(rows)
    assert check.isEnabled() and check.text() == "Carried decisions to check (2)"
    assert len(model.rows) == 4  # moth-a, moth-b, the two halves of moth-c
    check.setChecked(True)
    assert {model.index(k).data(ROW_ROLE).id for k in range(model.rowCount())} == parts
    assert "could not be carried: this configuration splits it" in tooltip(model.rows[0])
    check.setChecked(False)
    assert len(model.rows) == 4
    assert "carried from occurrence" in tooltip(carried)
    box.resize(760, 300)
    box.show()
    qtbot.waitExposed(box)
    out = tmp_path / "review-carried.png"  # (looked at while writing this test)
    box.grab().save(str(out))
    assert out.stat().st_size > 0
    # a person settles one half in B: it leaves the filter's count at the next reload
    review_store.confirm(db, [min(parts)], "Kim")
    model.set_rows(services.review.night_rows(other, cat.nights[N1]))
    assert check.text() == "Carried decisions to check (1)"
