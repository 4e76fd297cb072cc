"""Entry script PyInstaller freezes: the same `trapgui` command as `pip install` gives."""

import multiprocessing

if __name__ == "__main__":
    # A frozen app that starts a multiprocessing child re-runs this script; freeze_support makes
    # the child run its task instead of opening a second window.
    multiprocessing.freeze_support()
    from trapgui.app import entry

    entry()
