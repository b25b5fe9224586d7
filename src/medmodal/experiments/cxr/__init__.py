"""Benchmark, speed and demo of the ``cxr`` family."""
