"""moorage: a container engine for Linux hosts.

The daemon (`moord`) lives in :mod:`engine.daemon`; the client (`moor`) in
:mod:`engine.cli`. Layers, from the bottom up: ``errors``/``fsutil``/``store``
(no trio objects shared), ``runtime`` (conmon + OCI runtime), ``images``,
``containers`` (records and lifecycle), ``api`` (the Docker Engine API on h11).
"""

__version__ = "0.1.0"
