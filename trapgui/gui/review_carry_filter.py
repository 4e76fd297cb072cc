"""The Review tab's "Carried decisions to check" filter: a check box over the grid's model
that shows only the occurrences a person's decision from another model configuration of the
night could not be carried onto (split or joined by this configuration's tracker, too few
boxes matched; ``services.review.needs_check``), with how many there are."""

from __future__ import annotations

from PySide6.QtWidgets import QCheckBox

from trapgui.gui.review_model import ReviewModel


class CarryCheckFilter(QCheckBox):
    def __init__(self, model: ReviewModel, parent=None):
        super().__init__(parent)
        self._model = model
        self.setToolTip("Show only the occurrences where a decision made in another model "
                        "configuration of this night could not be carried one-to-one (hover "
                        "a tile for why; `trapgui review list --needs-check` lists them too)")
        self.toggled.connect(model.set_checks_only)
        model.modelReset.connect(self._count)
        model.dataChanged.connect(self._count)
        self._count()

    def _count(self, *_args) -> None:
        n = self._model.checks_count
        self.setText(f"Carried decisions to check ({n})")
        # nothing to check: the box stays out of the way, unless it is on (so it can go off)
        self.setEnabled(bool(n) or self.isChecked())
