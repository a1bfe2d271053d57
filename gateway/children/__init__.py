"""Stdio child processes: the child itself, its bubblewrap sandbox, just-in-time install
(provisioning) under cross-replica locks, and the per-server log files."""
