"""`python -m cli` runs the `mcpaas` command (same as the console script)."""

from cli.main import app

app(prog_name="mcpaas")
