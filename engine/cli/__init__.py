"""`moor`: the command-line client of moord, with docker's verbs, flags and output.

It speaks the same Docker Engine API as the docker CLI, over the unix socket named
by `-H`, `MOORAGE_HOST` or `DOCKER_HOST`. `client` is the reusable HTTP part;
`main` wires the click commands of `running`, `lifecycle`, `ps`, `images`, `system`, ...
"""
