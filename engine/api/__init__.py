"""The Docker Engine API, served by moord with h11 on trio.

`http` holds the request and response records handlers use, `router` maps paths to
handlers, `server` speaks HTTP/1.1 on the socket (keep-alive, chunked uploads,
streaming responses and the `101` hijack attach needs), `policing` keeps its clocks
on stalled clients and its caps on connections per client, `handlers` hold one module
per area, and `wire` turns domain records into Docker's JSON and back.
"""

API_VERSION = "1.50"
MIN_API_VERSION = "1.24"
