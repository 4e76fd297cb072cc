"""Exports (CSV) of the catalogue's results."""
