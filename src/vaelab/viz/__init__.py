"""Figures: one save_png, the per-model figures, the comparison charts, the conditional and quadrant figures."""
