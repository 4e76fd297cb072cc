"""Pure-Python building blocks: types, geometry, time, errors. No third-party imports but numpy."""
