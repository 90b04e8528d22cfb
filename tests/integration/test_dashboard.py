"""The dashboard in a real browser (headless Chromium from Debian, driven by Playwright) against
the real daemon process: the token prompt, tiles that follow a killed replica and a scale,
actions with their confirmation, deploy problems at their line and key path, names and errors
shown as text, and a reload that misses no event. Every wait is a condition with a timeout."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from typing import Any

import aiodocker
import pytest

from orchestrator.labels import LABEL_SERVICE, LABEL_SLOT, LABEL_STACK
from tests.integration.browser import WAIT_MS, Dashboard, chromium, missing_browser
from tests.integration.conftest import BUSYBOX, IN_CI
from tests.integration.daemon_process import DaemonProcess

if (why := missing_browser()) and not IN_CI:
    pytest.skip(why, allow_module_level=True)

from playwright.async_api import expect  # noqa: E402 - only when the browser is there

pytestmark = pytest.mark.integration
expect.set_options(timeout=WAIT_MS)

#: busybox `sleep` under init (it ignores SIGTERM as PID 1); a failed replica waits 3 s for its
#: restart, so its tile can be seen failed.
WEB = f"""\
services:
  web:
    image: {BUSYBOX}
    init: true
    command: ["sleep", "3600"]
    deploy:
      replicas: {{replicas}}
      restart_policy:
        condition: on-failure
        delay: 3s
"""
HOSTILE = "<img src=x onerror=document.body.dataset.pwned=1>"


@pytest.fixture
async def browser() -> AsyncIterator[Any]:
    if why := missing_browser():
        pytest.fail(why)  # only reached in CI: elsewhere the module is skipped
    async with chromium() as launched:
        yield launched


async def open_dashboard(browser: Any, daemon: DaemonProcess, **context: Any) -> Dashboard:
    """A fresh session (its own sessionStorage) with the token given."""
    page = await (await browser.new_context(**context)).new_page()
    dashboard = Dashboard(page, daemon.url)
    await dashboard.open(daemon.token)
    await dashboard.wait_live()
    return dashboard


async def deploy_web(daemon: DaemonProcess, stack: str, replicas: int) -> None:
    await daemon.deploy(stack, WEB.format(replicas=replicas))
    await daemon.poll(f"/v1/stacks/{stack}/services",
                      lambda services: services[0]["replicas_running"] == replicas)


async def slot_container(docker: aiodocker.Docker, stack: str, slot: int) -> Any:
    labels = [f"{LABEL_STACK}={stack}", f"{LABEL_SERVICE}=web", f"{LABEL_SLOT}={slot}"]
    listed = await docker.containers.list(filters={"label": labels, "status": ["running"]})
    assert len(listed) == 1, listed
    return listed[0]


async def test_token_prompt_refuses_a_wrong_token_and_keeps_the_right_one_for_the_session(
        browser: Any, daemon: DaemonProcess, stack_name: str) -> None:
    await deploy_web(daemon, stack_name, 1)
    context = await browser.new_context()
    page = await context.new_page()
    urls: list[str] = []
    page.on("request", lambda request: urls.append(request.url))
    dashboard = Dashboard(page, daemon.url)
    await dashboard.open()

    await dashboard.give_token("not-the-token")
    await expect(page.locator("#token-error")).to_have_text("the daemon refused that token")
    await expect(page.locator("#token-dialog")).to_be_visible()
    await expect(page.locator("article.stack")).to_have_count(0)  # nothing without the token

    await dashboard.give_token(daemon.token)
    await expect(page.locator("#token-dialog")).to_be_hidden()
    await expect(dashboard.tiles(stack_name, "web")).to_have_count(1)
    await dashboard.wait_live()

    await dashboard.reload()  # the same session: no prompt again
    await expect(dashboard.tile(stack_name, "web", 1)).to_have_attribute("data-state", "running")
    await expect(page.locator("#token-dialog")).to_be_hidden()
    assert not any(daemon.token in url for url in urls)  # only ever in the header

    other = Dashboard(await (await browser.new_context()).new_page(), daemon.url)
    await other.open()  # another session asks again
    await expect(other.page.locator("#token-dialog")).to_be_visible()
    await expect(other.page.locator("#token-error")).to_be_hidden()


async def test_a_killed_replica_goes_failed_then_running_and_its_events_are_logged(
        browser: Any, daemon: DaemonProcess, docker: aiodocker.Docker, stack_name: str) -> None:
    await deploy_web(daemon, stack_name, 2)
    dashboard = await open_dashboard(browser, daemon)
    tile = dashboard.tile(stack_name, "web", 1)
    await expect(tile).to_have_attribute("data-state", "running")
    container = await slot_container(docker, stack_name, 1)
    await expect(tile).to_have_attribute("data-container", container.id)
    old_task = await tile.get_attribute("data-task")

    await container.kill()
    await expect(tile).to_have_attribute("data-state", "failed")
    await expect(dashboard.log_lines(f"{stack_name}/web.1 running→failed")).to_have_count(1)
    await expect(tile).to_have_attribute("data-state", "running")
    assert await tile.get_attribute("data-task") != old_task
    await expect(tile).to_have_attribute("data-restarts", "1")
    await expect(tile).to_contain_text("last error")
    await expect(dashboard.log_lines(f"task.restart_scheduled {stack_name}/web.1")).to_have_count(1)
    spark = dashboard.page.locator(f'article[data-stack="{stack_name}"] [data-role="sparkline"]')
    await expect(spark).to_have_attribute("data-total", "1")
    await expect(dashboard.tile(stack_name, "web", 2)).to_have_attribute("data-restarts", "0")
    assert dashboard.errors == []
    assert dashboard.policy_violations == []


async def test_scale_from_the_page_and_the_tiles_follow(
        browser: Any, daemon: DaemonProcess, stack_name: str) -> None:
    await deploy_web(daemon, stack_name, 1)
    dashboard = await open_dashboard(browser, daemon)
    running = dashboard.tiles(stack_name, "web").and_(dashboard.page.locator('[data-state="running"]'))
    await expect(running).to_have_count(1)

    for replicas in (4, 2):
        await dashboard.button("scale", stack_name, "web").click()
        await dashboard.page.fill("#confirm-body input", str(replicas))
        await dashboard.confirm()
        await expect(running).to_have_count(replicas)
        await expect(dashboard.tiles(stack_name, "web")).to_have_count(replicas)
        count = dashboard.page.locator(f'article[data-stack="{stack_name}"] [data-role="count"]')
        await expect(count).to_have_text(f"{replicas}/{replicas}")
    _, services = await daemon.request("GET", f"/v1/stacks/{stack_name}/services")
    assert services[0]["replicas_desired"] == 2

    # Cancel changes nothing; a refused value is shown in the dialog, which stays open.
    await dashboard.button("scale", stack_name, "web").click()
    await dashboard.page.fill("#confirm-body input", "100000000")
    await dashboard.page.click("#confirm-ok")
    await expect(dashboard.page.locator("#confirm-error")).to_contain_text("max_replicas")
    await dashboard.page.click("#confirm-cancel")
    await expect(dashboard.tiles(stack_name, "web")).to_have_count(2)


async def test_deploy_shows_problems_at_their_line_then_deploys_and_removes(
        browser: Any, daemon: DaemonProcess, stack_name: str) -> None:
    dashboard = await open_dashboard(browser, daemon)
    page = dashboard.page
    await page.click("#deploy-open")
    await page.fill("#deploy-name", stack_name)
    bad = WEB.format(replicas=-1) + f'    "{HOSTILE}": 1\n'
    await page.fill("#deploy-text", bad)
    await page.click("#deploy-ok")
    await dashboard.confirm()
    problems = page.locator("#deploy-problem-list li")
    await expect(problems).to_have_count(2)
    await expect(problems.filter(has_text="stack.yml:7 services.web.deploy.replicas")).to_have_count(1)
    await expect(problems.filter(has_text=f"stack.yml:11 services.web.{HOSTILE}")).to_have_count(1)
    await expect(page.locator("img")).to_have_count(0)  # the key is text, not markup

    await page.fill("#deploy-text", WEB.format(replicas=2))
    await page.click("#deploy-ok")
    await dashboard.confirm()
    await expect(page.locator("#deploy-result")).to_contain_text(f"{stack_name}: created")
    await page.click("#deploy-cancel")
    running = dashboard.tiles(stack_name, "web").and_(page.locator('[data-state="running"]'))
    await expect(running).to_have_count(2)

    await dashboard.button("remove", stack_name).click()
    await dashboard.confirm()
    await expect(page.locator(f'article[data-stack="{stack_name}"]')).to_have_count(0)
    status, _ = await daemon.request("GET", f"/v1/stacks/{stack_name}")
    assert status == 404
    await expect(dashboard.log_lines(f"stack.removed {stack_name}")).to_have_count(1)


async def test_names_and_errors_from_the_daemon_are_shown_as_text(
        browser: Any, daemon: DaemonProcess, stack_name: str) -> None:
    # The engine cannot start this command; its error quotes the command back.
    await daemon.deploy(stack_name, f"""\
services:
  bad:
    image: {BUSYBOX}
    command: ["/{HOSTILE}"]
    deploy:
      restart_policy:
        condition: none
""")
    dashboard = await open_dashboard(browser, daemon)
    tile = dashboard.tile(stack_name, "bad", 1)
    # The engine refuses to start it: a failed container, or a rejected task when the start's
    # refusal came first.
    await expect(tile).to_have_attribute("data-state", re.compile("^(failed|rejected)$"))
    await expect(tile).to_contain_text(HOSTILE)
    await expect(dashboard.log_lines(HOSTILE)).not_to_have_count(0)
    await expect(dashboard.page.locator("img")).to_have_count(0)
    assert await dashboard.page.evaluate("document.body.dataset.pwned") is None
    assert dashboard.errors == []
    assert dashboard.policy_violations == []


async def test_a_reload_misses_no_event(browser: Any, daemon: DaemonProcess, stack_name: str) -> None:
    await deploy_web(daemon, stack_name, 1)
    dashboard = await open_dashboard(browser, daemon)
    page = dashboard.page
    await expect(dashboard.log_lines(f"stack.deployed {stack_name}")).to_have_count(1)

    await page.goto("about:blank")  # the tab keeps its sessionStorage
    status, _ = await daemon.request("POST", f"/v1/stacks/{stack_name}/scale", json={"web": 2})
    assert status == 200
    await daemon.poll(f"/v1/stacks/{stack_name}/services",
                      lambda services: services[0]["replicas_running"] == 2)
    await dashboard.open()  # no prompt: the token is in the session

    await expect(dashboard.log_lines(f"service.scaled {stack_name}/web replicas=2")).to_have_count(1)
    await expect(dashboard.log_lines(f"service.converged {stack_name}/web running=2/2")).to_have_count(1)
    seqs = [int(s) for s in await dashboard.log_lines().evaluate_all("lines => lines.map(l => l.dataset.seq)")]
    assert seqs == list(range(max(seqs), 0, -1))  # every message once, newest first
    await expect(dashboard.tiles(stack_name, "web")).to_have_count(2)


async def test_readable_on_a_phone_and_dark_when_the_system_is(
        browser: Any, daemon: DaemonProcess, stack_name: str) -> None:
    await deploy_web(daemon, stack_name, 3)
    light = await open_dashboard(browser, daemon, viewport={"width": 1280, "height": 800})
    phone = await open_dashboard(browser, daemon, viewport={"width": 375, "height": 740},
                                 color_scheme="dark", is_mobile=True, has_touch=True)
    for dashboard in (light, phone):
        await expect(dashboard.tiles(stack_name, "web")).to_have_count(3)
    width = "document.documentElement.scrollWidth <= window.innerWidth"
    assert await phone.page.evaluate(width), "the page scrolls sideways on a phone"
    background = "getComputedStyle(document.body).backgroundColor"
    assert await light.page.evaluate(background) != await phone.page.evaluate(background)
    # On a phone the event log comes below the stacks, not beside them.
    stacks = await phone.page.locator("#stacks").bounding_box()
    events = await phone.page.locator("aside.events").bounding_box()
    assert stacks is not None and events is not None and events["y"] >= stacks["y"] + stacks["height"]

