"""What a first-time user sees: how to open a trap folder; and a dismissable offer to get a
species model when none is installed."""

from __future__ import annotations

from PySide6.QtCore import Qt, Signal
from PySide6.QtGui import QFont
from PySide6.QtWidgets import (QFrame, QHBoxLayout, QLabel, QPushButton, QSizePolicy,
                               QVBoxLayout, QWidget)

from trapgui.gui.resources import app_icon


class EmptyState(QWidget):
    openRequested = Signal()
    remoteRequested = Signal()  # the Remote jobs tab: processing for Antenna needs no trap

    def __init__(self, parent=None, remote: bool = False):
        super().__init__(parent)
        self.setObjectName("emptyState")
        icon = QLabel(self)
        icon.setPixmap(app_icon().pixmap(128, 128))
        icon.setAlignment(Qt.AlignmentFlag.AlignCenter)
        title = QLabel("Drop a trap folder here", self)
        font = QFont(title.font())
        font.setPointSizeF(font.pointSizeF() * 1.8)
        font.setBold(True)
        title.setFont(font)
        title.setAlignment(Qt.AlignmentFlag.AlignCenter)
        text = QLabel("or choose File ▸ Open… (Ctrl+O). You can drop several folders at once.\n"
                      "trapgui finds the images, groups them into nights and keeps everything "
                      "in its own database:\nyour image files are never changed.", self)
        text.setAlignment(Qt.AlignmentFlag.AlignCenter)
        text.setWordWrap(True)
        button = QPushButton("Open trap folder…", self)
        button.setObjectName("emptyOpenButton")
        button.setToolTip("Choose the folder that holds a trap's images")
        button.setSizePolicy(QSizePolicy.Policy.Fixed, QSizePolicy.Policy.Fixed)
        button.clicked.connect(self.openRequested)
        self.remote_button = QPushButton("Process Antenna jobs…", self)
        self.remote_button.setObjectName("emptyRemoteButton")
        self.remote_button.setToolTip("Process images for the Antenna platform (Remote jobs "
                                      "tab): no trap folder needed")
        self.remote_button.setSizePolicy(QSizePolicy.Policy.Fixed, QSizePolicy.Policy.Fixed)
        self.remote_button.clicked.connect(self.remoteRequested)
        self.remote_button.setVisible(remote)
        remote_text = QLabel("Processing for Antenna? Remote jobs pull their images from the "
                             "server: start there without a trap folder.", self)
        remote_text.setAlignment(Qt.AlignmentFlag.AlignCenter)
        remote_text.setWordWrap(True)
        remote_text.setVisible(remote)
        layout = QVBoxLayout(self)
        layout.addStretch(2)
        layout.addWidget(icon)
        layout.addSpacing(12)
        layout.addWidget(title)
        layout.addWidget(text)
        layout.addSpacing(12)
        layout.addWidget(button, 0, Qt.AlignmentFlag.AlignHCenter)
        layout.addSpacing(24)
        layout.addWidget(remote_text)
        layout.addSpacing(6)
        layout.addWidget(self.remote_button, 0, Qt.AlignmentFlag.AlignHCenter)
        layout.addStretch(3)


class ModelOfferBar(QFrame):
    """A strip above the tabs; never modal, hidden for good with "Don't show again"."""

    openRequested = Signal()
    dismissed = Signal()

    def __init__(self, parent=None):
        super().__init__(parent)
        self.setObjectName("modelOfferBar")
        self.setFrameShape(QFrame.Shape.StyledPanel)
        self.setAutoFillBackground(True)
        self.setBackgroundRole(self.backgroundRole().AlternateBase)
        label = QLabel("No species classifier is installed yet: trapgui can find insects, but "
                       "not name them. Get one in the model manager.", self)
        label.setWordWrap(True)
        open_button = QPushButton("Open model manager", self)
        open_button.setToolTip("Download or import a species classifier")
        open_button.clicked.connect(self.openRequested)
        open_button.clicked.connect(self.hide)
        later = QPushButton("Not now", self)
        later.setToolTip("Hide this until trapgui is started again")
        later.clicked.connect(self.hide)
        never = QPushButton("Don't show again", self)
        never.setObjectName("offerDismissButton")
        never.setToolTip("Never offer this again (Tools ▸ Models is always available)")
        never.clicked.connect(self.dismissed)
        never.clicked.connect(self.hide)
        layout = QHBoxLayout(self)
        layout.addWidget(label, 1)
        layout.addWidget(open_button)
        layout.addWidget(later)
        layout.addWidget(never)
        self.hide()
