from trapgui.app import entry

entry()
