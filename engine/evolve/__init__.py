"""Evolutionary search over training settings and architectures, on Optuna: spaces, samplers (NSGA-II, TPE,
random, and regularized evolution), studies in a storage several workers share, and trials that are ordinary
training runs."""
