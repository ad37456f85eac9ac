"""One module per stage: a typed config and a `run()` that writes an artifact folder."""
