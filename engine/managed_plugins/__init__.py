"""Managed plugins: Docker's `docker plugin create/ls/inspect/rm`, stored but not run."""
