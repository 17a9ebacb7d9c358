"""Scaling laws and emergent abilities (guide §3), measured here: compute sweeps, fitted laws, emergence probes.

`shapes.py` (model sizes and the three ways to count parameters), `powerlaw.py` (log-log fits, bootstrap),
`chinchilla.py` (approach 3: the parametric L(N, D) fit and published constants), `isoflop.py` (approach 2),
`sweep.py` (the budgets × sizes runs), `analysis.py` (every fit under every convention, the prediction test),
`tasks.py` (synthetic in-context tasks), `probes.py` (scoring them and the induction-head score),
`emergence.py` (a family of sizes trained on the task mixture).
"""
