"""Runbook rendering time (issue 14, PRD section 18: adaptive documentation under 10 s,
target here 1 s per request): the median time to render every runbook of one role and
scenario (what `GET /api/runbooks` does), for each pair with content, in the sandboxed
environment the platform uses, against the same templates in a plain (unsandboxed)
Jinja2 environment in the same run: the ratio is the sandbox's cost. Also the cold
cost: loading and compiling every template once (the first request of a process).

Run: `.venv/bin/python bench/runbooks.py [--rounds N]`.
"""

from __future__ import annotations

import argparse
import itertools
import statistics
import sys
import time
from pathlib import Path

from jinja2 import Environment, StrictUndefined

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from shared import runbooks  # noqa: E402
from shared.settings import Settings  # noqa: E402


def _unsandboxed(library: dict[str, runbooks.Template]) -> dict[str, runbooks.Template]:
    env = Environment(undefined=StrictUndefined, keep_trailing_newline=True, trim_blocks=True, lstrip_blocks=True)
    env.filters.update(runbooks._ENV.filters)
    plain = {}
    for key, template in library.items():
        text = template.path.read_text(encoding="utf-8")
        body = text[runbooks._FRONT_MATTER.match(text).end():]
        plain[key] = runbooks.Template(template.meta, env.from_string(body), template.path)
    return plain


def _median_ms(library: dict[str, runbooks.Template], params: runbooks.RunbookParams, rounds: int) -> float:
    pairs = [(role, scenario) for role, scenario in itertools.product(runbooks.RunbookRole, runbooks.Scenario)
             if runbooks.render_runbooks(role, scenario, params, library=library)]
    samples = []
    for _ in range(rounds):
        for role, scenario in pairs:
            started = time.perf_counter()
            runbooks.render_runbooks(role, scenario, params, library=library)
            samples.append(time.perf_counter() - started)
    return statistics.median(samples) * 1000


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rounds", type=int, default=50)
    args = parser.parse_args()
    started = time.perf_counter()
    library = runbooks.load_library()
    cold_ms = (time.perf_counter() - started) * 1000
    params = runbooks.runbook_params(Settings(data_dir=Path("/nonexistent")))
    sandboxed = _median_ms(library, params, args.rounds)
    plain = _median_ms(_unsandboxed(library), params, args.rounds)
    print(f"load + compile {len(library)} templates (first request): {cold_ms:.1f} ms")
    print(f"render one role x scenario, sandboxed: median {sandboxed:.2f} ms")
    print(f"render one role x scenario, plain Jinja2: median {plain:.2f} ms")
    print(f"sandbox / plain: {sandboxed / plain:.2f}x; target < 1000 ms per request")


if __name__ == "__main__":
    main()
