"""Plain-Python facade the GUI calls (from worker threads): catalogue queries, processing,
export, models, remote jobs. No Qt here; the GUI imports nothing below this layer."""
