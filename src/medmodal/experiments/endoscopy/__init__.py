"""Benchmark, speed and demo of the ``endoscopy`` family."""
