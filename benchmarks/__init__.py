"""Benchmarks of sphcnn (JSON lines; run as modules, e.g. python -m benchmarks.transforms)."""
