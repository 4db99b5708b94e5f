"""The classic builder: Dockerfiles and build contexts turned into images.

The Dockerfile language itself (parser, `$VAR` substitution, ARG/ENV scoping) lives in
`engine.dockerfile`, shared with `commit --change`; here are the build's own parts:
`dockerignore` decides which context files are excluded, `context` receives the
context, `copying` makes COPY/ADD layers, `builder` runs the steps.
"""
