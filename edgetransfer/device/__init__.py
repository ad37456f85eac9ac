"""Running bundles where they will run: an emulated ARM CPU (and, next, a board over SSH)."""
