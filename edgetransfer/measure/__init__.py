"""What is measured, one way for every stage: parity, latency and its baseline, metrics,
scoring on labelled data, the runners over both runtimes, the bundle's footprint."""
