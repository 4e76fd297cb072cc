"""The SQLite catalogue and processing queue (SQLAlchemy 2.x)."""

from trapgui.db.database import Database, open_database

__all__ = ["Database", "open_database"]
