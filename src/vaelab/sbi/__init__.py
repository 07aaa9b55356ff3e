"""Simulation-based inference: sbibm's tasks and files, C2ST, sbi's NPE and the CVAE/BBVI posterior estimators."""
