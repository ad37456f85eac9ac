"""`edgetransfer search`: the smallest, fastest student within a budget (budget.py: the
constraints; space.py: the candidates; pareto.py: the front and its plot)."""
