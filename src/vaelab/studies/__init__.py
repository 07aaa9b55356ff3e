"""Studies: typed config in, plain results out (the evaluation's scorecard, the quadrant task, the claims'
verdicts, the sweeps). Never imports tracking, viz, report or pipeline."""
