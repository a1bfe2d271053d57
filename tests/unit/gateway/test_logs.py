"""Per-server logs: the writer's line format and `read_log` filters (the routes that serve
them: tests/integration/gateway/test_admin_logs.py)."""

from __future__ import annotations

import time
from datetime import datetime, timezone
from pathlib import Path

from gateway.children.logs import append_line, read_log


def test_tail_and_since_filter_lines(tmp_path: Path) -> None:
    path = tmp_path / "stderr.log"
    for i in range(5):
        append_line(path, 42, f"early {i}")
    time.sleep(0.01)
    cut = datetime.now(timezone.utc)
    append_line(path, 43, "late\n")
    assert [line.split(" ", 2)[2] for line in read_log(path, tail=2)] == ["early 4", "late"]
    assert read_log(path, since=cut)[0].endswith("[43] late")
    assert len(read_log(path, tail=100)) == 6
    assert read_log(tmp_path / "missing.log") == []
