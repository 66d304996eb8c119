"""Experiment drivers: config sweeps (``experiments.sweep``) and their reports
(``experiments.report``)."""
