"""Models: finding and loading a backbone safely, building students, the head's modules."""
