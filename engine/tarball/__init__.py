"""Tar streams from outside, read without trusting them.

`compression` turns a possibly compressed stream (gzip, zstd, bzip2, xz) into the tar;
`extract` writes a tar into a directory by rules that keep every member inside it.
Image layers (`engine.images.unpack`), build contexts, `ADD` archives and `docker cp`
uploads all go through the one extractor, each with its own `ExtractRules`.
"""
