"""One host, many viewers: the service serves its session on a local Unix socket (server.py), and
`tuimeter attach` / `tuimeter web` show it (client.py, web.py). The line format is in wire.py and
docs/attach.md."""
