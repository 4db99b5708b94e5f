"""Benchmarks: moord beside dockerd and Podman, driven through the stock docker CLI."""
