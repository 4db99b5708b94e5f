"""Third-party conformance suites, run unmodified against a private moord (`python -m
tests.conformance`). See runner.py."""
