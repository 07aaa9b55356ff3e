"""The one training loop (every model, the judge, the quadrant networks and the SBI estimators) and its optimiser."""
