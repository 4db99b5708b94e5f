"""Container logs: read, tail and follow what conmon writes (k8s-file), losing no line."""
