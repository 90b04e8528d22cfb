"""docs/dashboard.png: the dashboard with the getting-started stack, as README shows it.

Starts the real daemon (its own state dir, port and Redis prefix), deploys
stacks/getting-started.yml with the locally built images, kills one web replica so that the
picture has a restart in it, waits until every replica runs again, and photographs the page in
headless Chromium. Removes the stack (and its volume) and stops the daemon at the end.

    scripts/screenshot [--out docs/dashboard.png] [--stack getting-started] [--width 1280]
"""

from __future__ import annotations

import argparse
import asyncio
import secrets
import socket
import sys
import tempfile
from pathlib import Path

import aiodocker

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from orchestrator.labels import LABEL_SERVICE, LABEL_SLOT, LABEL_STACK  # noqa: E402
from tests.integration.browser import Dashboard, chromium, missing_browser  # noqa: E402
from tests.integration.daemon_process import DaemonProcess, free_port  # noqa: E402

STACK_FILE = ROOT / "stacks" / "getting-started.yml"
IMAGES = {"WEB_IMAGE": "orchestrator/demo-web:latest", "REDIS_IMAGE": "orchestrator/redis:7"}


def web_port() -> int:
    """4000 as README says, unless something else has it."""
    with socket.socket() as probe:
        try:
            probe.bind(("0.0.0.0", 4000))  # noqa: S104 - the ingress binds it so
        except OSError:
            return free_port()
    return 4000


def converged(services: list[dict]) -> bool:
    return bool(services) and all(s["replicas_running"] == s["replicas_desired"] for s in services)


async def kill_one_web_replica(stack: str) -> None:
    labels = [f"{LABEL_STACK}={stack}", f"{LABEL_SERVICE}=web", f"{LABEL_SLOT}=2"]
    async with aiodocker.Docker() as docker:
        for container in await docker.containers.list(filters={"label": labels, "status": ["running"]}):
            await container.kill()


async def photograph(daemon: DaemonProcess, stack: str, out: Path, width: int, dark: bool) -> None:
    async with chromium() as browser:
        context = await browser.new_context(viewport={"width": width, "height": 900},
                                            device_scale_factor=1, color_scheme="dark" if dark else "light")
        dashboard = Dashboard(await context.new_page(), daemon.url)
        await dashboard.open(daemon.token)
        await dashboard.wait_live()
        running = dashboard.tiles(stack, "web").and_(dashboard.page.locator('[data-state="running"]'))
        await running.nth(4).wait_for()
        await kill_one_web_replica(stack)
        await dashboard.tile(stack, "web", 2).and_(
            dashboard.page.locator('[data-restarts="1"][data-state="running"]')).wait_for(timeout=60_000)
        await daemon.poll(f"/v1/stacks/{stack}/services", converged, timeout=60)
        await dashboard.page.screenshot(path=str(out), full_page=True)
        if dashboard.errors:
            raise SystemExit(f"the page reported errors: {dashboard.errors}")


async def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=Path, default=ROOT / "docs" / "dashboard.png")
    parser.add_argument("--stack", default="getting-started")
    parser.add_argument("--width", type=int, default=1280)
    parser.add_argument("--dark", action="store_true", help="the dark colour scheme")
    args = parser.parse_args()
    if why := missing_browser():
        raise SystemExit(why)
    with tempfile.TemporaryDirectory(prefix="orchestrator-screenshot-") as state:
        daemon = DaemonProcess(Path(state), f"orchestrator-screenshot-{secrets.token_hex(3)}")
        await daemon.start()
        try:
            env = {**IMAGES, "WEB_PORT": str(web_port())}
            await daemon.deploy_file(args.stack, STACK_FILE, env)
            await daemon.poll(f"/v1/stacks/{args.stack}/services", converged, timeout=120)
            await photograph(daemon, args.stack, args.out, args.width, args.dark)
            print(f"wrote {args.out}")
        finally:
            await daemon.request("DELETE", f"/v1/stacks/{args.stack}?volumes=true")
            await daemon.stop()
    return 0


if __name__ == "__main__":
    sys.exit(asyncio.run(main()))
