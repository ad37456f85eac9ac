"""`edgetransfer search`: the smallest, fastest student within a budget (budget.py: the
constraints and the size measure; space.py: the candidates; judge.py: the best and the
verdict; pareto.py: the front and its plot; report.py: what a search writes)."""
