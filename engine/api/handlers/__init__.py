"""One module per API area; each defines `router`."""
