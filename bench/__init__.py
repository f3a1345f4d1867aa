"""Benchmarks (`make bench`): each measurement beside its baseline, in the same run."""
