#!/bin/sh
# /usr/bin/trapgui: start the app installed under /opt/trapgui (the bundle finds its libraries
# next to its own executable, so it is started by its real path).
exec /opt/trapgui/trapgui "$@"
