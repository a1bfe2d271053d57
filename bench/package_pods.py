"""The cost of a package server in its own pod (issue 11 item 4): session start median
and `tools/call` p50 through the gateway when it hosts the stdio child itself, against
the gateway proxying to a single-server process (what runs in the pod), same run,
ratios printed.

Both serve server-everything (node, over stdio) in `isolated` mode with no warm pool and
no sandbox (a package-server pod runs without bubblewrap; bench/sandbox.py measures it).
The "pod" is `python -m gateway` in single-server mode with the settings its ConfigMap
gives (`shared.package_pods.pod_settings`) on loopback; the central gateway runs with
`MCPAAS_GATEWAY_PACKAGE_PODS=true` and the server's `upstream_url` pointing at it.

Run: `.venv/bin/python bench/package_pods.py [--starts N] [--calls N]`.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from sandbox import measure  # noqa: E402
from targets import GATEWAY_ENV, Target, everything_spec, free_port, spawn, start_gateway, started  # noqa: E402

from shared.models import ServerSpec, SessionMode  # noqa: E402
from shared.package_pods import pod_settings  # noqa: E402
from shared.settings import Settings  # noqa: E402
from shared.store import open_store  # noqa: E402

NO_WARM_POOL = {"MCPAAS_GATEWAY_WARM_POOL_SIZE": "0"}


async def start_pod(data_dir: Path) -> Target:
    """The single-server process of `everything`, as its pod would run it."""
    spec = ServerSpec.model_validate(everything_spec("everything", SessionMode.ISOLATED)["spec"])
    port = free_port()
    proc = spawn([sys.executable, "-m", "gateway"], {
        **pod_settings(spec), **NO_WARM_POOL, "MCPAAS_DATA_DIR": str(data_dir),
        "MCPAAS_GATEWAY_HOST": "127.0.0.1", "MCPAAS_GATEWAY_PORT": str(port)})
    return await started("pod", proc, port, f"http://127.0.0.1:{port}")


async def start_central(data_dir: Path, pod: Target) -> Target:
    """A gateway whose `everything` lives in `pod` (its `upstream_url`)."""
    store = open_store(Settings(data_dir=data_dir))
    store.upsert("servers", everything_spec("everything", SessionMode.ISOLATED) | {"upstream_url": f"{pod.base}/mcp"})
    return await start_gateway(data_dir, {}, {**NO_WARM_POOL, "MCPAAS_GATEWAY_PACKAGE_PODS": "true"})


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--starts", type=int, default=30)
    parser.add_argument("--calls", type=int, default=1000)
    args = parser.parse_args()
    started_targets: list[Target] = []
    with tempfile.TemporaryDirectory() as tmp:
        try:
            sandbox = {"MCPAAS_GATEWAY_SANDBOX": GATEWAY_ENV["MCPAAS_GATEWAY_SANDBOX"]}
            local = await start_gateway(Path(tmp) / "children", {"everything": SessionMode.ISOLATED},
                                        {**NO_WARM_POOL, **sandbox})
            started_targets.append(local)
            pod = await start_pod(Path(tmp) / "pod")
            started_targets.append(pod)
            central = await start_central(Path(tmp) / "central", pod)
            started_targets.append(central)
            results = await measure({"children": local, "pod": central}, args.starts, args.calls)
        finally:
            for target in started_targets:
                target.stop()
    here, there = results["children"], results["pod"]
    print(f"{'':22} {'start median ms':>16} {'tools/call p50 ms':>18}")
    for name, row in (("gateway's own child", here), ("via the pod", there)):
        print(f"{name:22} {row['start_ms']:16.1f} {row['p50_ms']:18.3f}")
    print(f"start: +{there['start_ms'] - here['start_ms']:.1f} ms (ratio {there['start_ms'] / here['start_ms']:.2f})")
    print(f"tools/call p50: +{there['p50_ms'] - here['p50_ms']:.3f} ms "
          f"(ratio {there['p50_ms'] / here['p50_ms']:.2f}): the in-cluster hop")


if __name__ == "__main__":
    asyncio.run(main())
