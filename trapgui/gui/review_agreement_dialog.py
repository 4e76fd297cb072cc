"""How often the review agreed with the machine: per taxon and overall (reviewed, confirmed,
changed, rejected) and what labels were changed to, for this night or every night of the
model configuration; saved as CSV (the table `trapgui review agreement --out` writes)."""

from __future__ import annotations

from PySide6.QtCore import Qt
from PySide6.QtWidgets import (QComboBox, QDialog, QDialogButtonBox, QFileDialog, QHBoxLayout,
                               QHeaderView, QLabel, QTableWidget, QTableWidgetItem, QVBoxLayout)

from trapgui.gui.error_dialog import show_error
from trapgui.gui.job_runner import job_runner

TAXON_HEADERS = ("Machine label", "Reviewed", "Confirmed", "Changed", "Not an insect", "Agreement")
CONFUSION_HEADERS = ("Machine label", "Reviewer's label", "Occurrences")


class ReviewAgreementDialog(QDialog):
    def __init__(self, services, pipeline_id: int, night_id: int | None, parent=None):
        super().__init__(parent)
        self.setWindowTitle("Review agreement")
        self._services = services
        self._pipeline = pipeline_id
        self._night = night_id
        self._generation = 0
        self.scope = QComboBox(self)
        if night_id is not None:
            self.scope.addItem("This night", [night_id])
        self.scope.addItem("Every night (this model configuration)", None)
        self.summary = QLabel("Reading…", self)
        self.summary.setObjectName("agreementSummary")
        self.summary.setWordWrap(True)
        self.taxa = self._table(TAXON_HEADERS)
        self.confusion = self._table(CONFUSION_HEADERS)
        buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Close, self)
        self.save = buttons.addButton("Save as CSV…", QDialogButtonBox.ButtonRole.ActionRole)
        self.save.clicked.connect(self._save)
        buttons.rejected.connect(self.reject)
        top = QHBoxLayout()
        top.addWidget(QLabel("Scope", self))
        top.addWidget(self.scope, 1)
        layout = QVBoxLayout(self)
        layout.addLayout(top)
        layout.addWidget(self.summary)
        layout.addWidget(QLabel("Per machine label", self))
        layout.addWidget(self.taxa, 2)
        layout.addWidget(QLabel("Changed to (confusion table)", self))
        layout.addWidget(self.confusion, 1)
        layout.addWidget(buttons)
        self.resize(640, 520)
        self.scope.currentIndexChanged.connect(lambda _i: self._load())
        self._load()

    def _table(self, headers) -> QTableWidget:
        table = QTableWidget(0, len(headers), self)
        table.setHorizontalHeaderLabels(list(headers))
        table.verticalHeader().setVisible(False)
        table.setEditTriggers(QTableWidget.EditTrigger.NoEditTriggers)
        header = table.horizontalHeader()
        for col, name in enumerate(headers):
            header.setSectionResizeMode(col, QHeaderView.ResizeMode.Stretch if "label" in name
                                        else QHeaderView.ResizeMode.ResizeToContents)
        table.setWordWrap(False)
        return table

    def _load(self) -> None:
        self._generation += 1
        gen, services, pipeline, nights = (self._generation, self._services, self._pipeline,
                                           self.scope.currentData())
        job_runner().call(lambda: services.review.agreement(pipeline, nights),
                          lambda a: self._show(gen, a),
                          lambda exc: self.summary.setText(f"Could not read the review: {exc}"),
                          context=self, name="review: agreement")

    def _show(self, gen: int, agreement) -> None:
        if gen != self._generation:
            return
        self.agreement = agreement
        o = agreement.overall
        if not o.reviewed:
            self.summary.setText("Nothing reviewed here yet.")
        else:
            self.summary.setText(
                f"<b>{o.reviewed:,}</b> occurrences reviewed: <b>{o.agreement:.0%}</b> confirmed "
                f"as the machine labelled them, {o.changed:,} changed, {o.rejected:,} not an "
                "insect.")
        self._fill(self.taxa, [(t.machine_label, t.reviewed, t.confirmed, t.changed, t.rejected,
                                f"{t.agreement:.0%}") for t in agreement.per_taxon])
        self._fill(self.confusion, [c for c in agreement.confusion if c[0] != c[1]])

    def _fill(self, table: QTableWidget, rows) -> None:
        """Most reviewed first (the service's order is by name)."""
        rows = sorted(rows, key=lambda r: (-r[1 if table is self.taxa else 2], str(r[0])))
        table.setRowCount(len(rows))
        for r, row in enumerate(rows):
            for c, value in enumerate(row):
                item = QTableWidgetItem()
                item.setData(Qt.ItemDataRole.DisplayRole, value)
                if not isinstance(value, str):
                    item.setTextAlignment(Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter)
                table.setItem(r, c, item)

    def _save(self) -> None:
        path, _ = QFileDialog.getSaveFileName(self, "Save agreement", "review-agreement.csv",
                                              "CSV files (*.csv)")
        if path:
            self.save_to(path)

    def save_to(self, path: str) -> None:
        services, pipeline, nights = self._services, self._pipeline, self.scope.currentData()
        job_runner().call(lambda: services.review.write_agreement_csv(path, pipeline, nights),
                          lambda out: self.summary.setText(f"Saved to {out}."),
                          lambda exc: show_error(self, "Agreement not saved", exc),
                          context=self, name="review: agreement CSV")
