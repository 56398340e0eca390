"""Scoring: metrics of probabilities against labels, evaluation of a model on a fold, and the
statistics (t-CIs, paired tests, bootstrap) that compare runs. No training code here."""
