"""Reading data files and splits, with their one-line checks, and class labels."""
