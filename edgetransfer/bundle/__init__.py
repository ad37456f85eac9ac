"""The bundle a device runs: the reproducible archive (archive.py) and the runtime shipped in
it (runtime/predict.py, which imports nothing of this package)."""
