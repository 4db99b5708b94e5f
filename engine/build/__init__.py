"""The classic builder: Dockerfiles and build contexts turned into images (issue 8).

The front end is pure: `dockerfile` parses a Dockerfile into records, `substitution`
expands `$VAR` in instruction arguments and models ARG/ENV scoping, `dockerignore`
decides which context files are excluded. None of them touches a file.
"""
