"""Indexing trap folders: file discovery, header reads, capture times, nights (Pillow + db)."""
