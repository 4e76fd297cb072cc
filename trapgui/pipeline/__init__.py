"""The engine: joins ml and db; turns queued images into results. No Qt."""
