"""Benchmarks anyone can rerun: ``python -m bench all`` (or ``make bench``)."""
