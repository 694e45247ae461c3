"""Accuracy evaluations and speed benchmarks behind `vitaledge eval` and `vitaledge bench`."""
