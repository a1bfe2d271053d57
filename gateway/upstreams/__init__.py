"""Where a server's traffic goes: the server registry, the reverse proxy to `remote` and
`container` servers, forwarding to the replica owning a session, and single-server mode."""
