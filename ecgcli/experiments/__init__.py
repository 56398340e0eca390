"""Experiments built from ordinary runs: the configuration grammar (spec), grids of
configurations x label fractions x seeds (grid), their results file (results), the runners
(runner), comparisons and plots (compare, plots) and the guided tour (quickstart)."""
