"""Retake the screenshots of the console page (``docs/_static/console/*.png``).

Run it against a running development stack, in headless Chromium (Debian's ``chromium`` and
``chromium-driver``; Selenium comes with ``make install``)::

    make dev                                  # in another terminal
    .venv/bin/python docs/screenshots.py      # --url, --api, --out to point elsewhere

Before it takes them it gives the console something to show, the way an operator would: wall
and world-clock timers and a dead letter created over the REST API (the dead letter is a
deferred effect sent to the wrong campaign, which the job refuses), a sweep run with the
console's own Run now button, and a schedule disabled and enabled again in the console.
"""

from __future__ import annotations

import argparse
import shutil
import sys
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path

import requests
from selenium import webdriver
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By
from selenium.webdriver.support import expected_conditions
from selenium.webdriver.support.ui import WebDriverWait

OUT = Path(__file__).resolve().parent / "_static" / "console"
WIDTH = 1366


def iso(moment: datetime) -> str:
    return moment.astimezone(timezone.utc).isoformat(timespec="milliseconds").replace("+00:00", "Z")


class Stack:
    """The dev stack's REST API and reference API."""

    def __init__(self, url: str, token: str, api: str, api_key: str):
        self.url = url.rstrip("/")
        self.rest = requests.Session()
        self.rest.headers.update({"Authorization": f"Bearer {token}", "X-Actor": "screenshots"})
        self.api = api
        self.api_key = api_key

    def call(self, method: str, path: str, **kwargs):
        response = self.rest.request(method, f"{self.url}/api/v1{path}", timeout=30, **kwargs)
        response.raise_for_status()
        return response.json()

    def gql(self, query: str, variables=None) -> dict:
        body = requests.post(self.api, json={"query": query, "variables": variables}, timeout=30,
                             headers={"x-api-key": self.api_key}).json()
        if body.get("errors"):
            raise RuntimeError(f"reference API: {body['errors']}")
        return body["data"]

    def job(self, **body) -> dict:
        return self.call("POST", "/jobs", json=body)


def seed(stack: Stack) -> str:
    """Timers on both clocks and one dead letter; returns the dead letter's id."""
    now = datetime.now(timezone.utc)
    for delay, priority in ((timedelta(minutes=12), 5), (timedelta(hours=3), 8), (timedelta(days=2), 1)):
        stack.job(type="PING", campaignId="SYSTEM", runAt=iso(now + delay), priority=priority)
    campaigns = stack.gql("{ campaigns { id name currentWorldTime } }")["campaigns"]
    clocked = next(c for c in campaigns if c["currentWorldTime"])
    other = next(c for c in campaigns if c["id"] != clocked["id"])
    world = datetime.fromisoformat(clocked["currentWorldTime"].replace("Z", "+00:00"))
    for days in (1, 7, 30):
        stack.job(type="PING", campaignId=clocked["id"], runAtWorldTime=iso(world + timedelta(days=days)))
    settlement = stack.gql("query($c: ID!) { settlementsByCampaign(campaignId: $c, first: 1) "
                           "{ nodes { id } } }", {"c": clocked["id"]})["settlementsByCampaign"]["nodes"][0]
    effect = stack.gql(
        "mutation($i: CreateEffectInput!) { createEffect(input: $i) { id } }",
        {"i": {"name": "Harvest festival bonus", "effectType": "patch",
               "payload": [{"op": "add", "path": "/festival", "value": True}],
               "entityType": "Settlement", "entityId": settlement["id"]}})["createEffect"]
    dead = stack.job(type="DEFERRED_EFFECT", campaignId=other["id"], payload={"effectId": effect["id"]})
    return wait_for_job(stack, dead["id"], states=("dead",))["id"]


def wait_for_job(stack: Stack, job_id: str, states=("succeeded", "dead", "cancelled"),
                 timeout: float = 60) -> dict:
    """The job once it reached one of ``states``."""
    deadline = time.monotonic() + timeout
    while (job := stack.call("GET", f"/jobs/{job_id}"))["state"] not in states:
        if time.monotonic() > deadline:
            raise RuntimeError(f"job {job_id} is still {job['state']} after {timeout:g} s")
        time.sleep(0.3)
    return job


def chromium() -> webdriver.Chrome:
    browser, driver = shutil.which("chromium"), shutil.which("chromedriver")
    if not (browser and driver):
        sys.exit("screenshots: install Debian's chromium and chromium-driver first")
    options = webdriver.ChromeOptions()
    options.binary_location = browser
    for argument in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--disable-gpu",
                     f"--window-size={WIDTH},900", "--hide-scrollbars", "--force-device-scale-factor=1"):
        options.add_argument(argument)
    return webdriver.Chrome(service=Service(driver), options=options)


def click(driver, label: str) -> None:
    """Press a console button and wait for the page it leads back to."""
    page = driver.find_element(By.TAG_NAME, "html")
    next(b for b in driver.find_elements(By.CSS_SELECTOR, "button") if b.text == label).click()
    WebDriverWait(driver, 30).until(expected_conditions.staleness_of(page))


def shoot(driver, url: str, name: str, out: Path) -> Path:
    """Open ``url`` and save the whole page as ``out/name.png``."""
    viewport = {"width": WIDTH, "height": 900, "deviceScaleFactor": 1, "mobile": False}
    driver.execute_cdp_cmd("Emulation.setDeviceMetricsOverride", viewport)
    driver.get(url)
    height = driver.execute_script(
        "return Math.ceil(document.querySelector('footer').getBoundingClientRect().bottom"
        " + window.scrollY)")
    viewport["height"] = min(max(height, 400), 4000)
    driver.execute_cdp_cmd("Emulation.setDeviceMetricsOverride", viewport)
    path = out / f"{name}.png"
    driver.save_screenshot(str(path))
    return path


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--url", default="http://127.0.0.1:9266", help="the scheduler (make dev)")
    parser.add_argument("--token", default="dev-token", help="SCHEDULER_API_TOKEN")
    parser.add_argument("--api", default="http://127.0.0.1:9264/graphql", help="the reference API")
    parser.add_argument("--api-key", default="dev-key", help="its REFERENCE_API_KEY")
    parser.add_argument("--out", type=Path, default=OUT, help="where the PNG files go")
    args = parser.parse_args(argv)
    stack = Stack(args.url, args.token, args.api, args.api_key)
    dead_id = seed(stack)
    args.out.mkdir(parents=True, exist_ok=True)
    console = f"{stack.url}/admin"
    driver = chromium()
    try:
        # an operator's changes, through the console's own forms
        driver.get(f"{console}/schedules/settlement-growth")
        click(driver, "Disable")
        click(driver, "Enable")
        driver.get(f"{console}/schedules/event-expiration")
        click(driver, "Run now")
        wait_for_job(stack, stack.call("GET", "/schedules/event-expiration")["lastRun"]["jobId"])
        campaigns = stack.call("GET", "/world-clocks")["items"]
        shots = [
            (f"{console}/", "overview"),
            (f"{console}/schedules", "schedules"),
            (f"{console}/schedules/event-expiration", "schedule"),
            (f"{console}/timers", "timers"),
            (f"{console}/timers/world/{campaigns[0]['campaignId']}", "world-clock"),
            (f"{console}/jobs", "jobs"),
            (f"{console}/jobs/{dead_id}", "job"),
        ]
        for url, name in shots:
            print(shoot(driver, url, name, args.out))
    finally:
        driver.quit()
    return 0


if __name__ == "__main__":
    sys.exit(main())
