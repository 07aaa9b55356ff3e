"""What the study measures: likelihood bounds, exact 2-D posteriors, latent metrics, continuity, sharpness,
style, sample quality, the no-latent baselines and the judge (the digit classifier whose features they use)."""
