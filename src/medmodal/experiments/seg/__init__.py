"""Benchmark, speed and demo of the ``seg`` family."""
