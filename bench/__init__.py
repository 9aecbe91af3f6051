"""Benchmarks: `make bench` runs :mod:`bench.run`; `bench/gpu_bench.py` is the device-machine variant."""
