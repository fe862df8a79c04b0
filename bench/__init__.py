"""Benchmarks for burner-api: latency, phases, throughput, engine scaling and the tutorial flow.

Run with ``make bench`` or ``python -m bench --help``; not part of the test suite.
"""
