"""The console in a real headless Chromium (Debian's chromium and chromium-driver, driven by
Selenium), clicking through the pages of a live ``scheduler-service web`` process.

Skipped, with the reason, where no browser or driver is installed.
"""

import shutil
from datetime import datetime, timedelta, timezone

import pytest
import requests

from scheduler_service.dispatch import send_job
from scheduler_service.jobstore import now_ms
from helpers import running_worker, wait_for

pytestmark = pytest.mark.slow

webdriver = pytest.importorskip("selenium.webdriver", reason="selenium is not installed (make install)")
from selenium.webdriver.chrome.service import Service  # noqa: E402
from selenium.webdriver.common.by import By  # noqa: E402
from selenium.common.exceptions import StaleElementReferenceException, WebDriverException  # noqa: E402
from selenium.webdriver.support.ui import Select, WebDriverWait  # noqa: E402

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
CHROMEDRIVER = shutil.which("chromedriver")
if not (CHROMIUM and CHROMEDRIVER):
    pytest.skip("no headless browser: install Debian's chromium and chromium-driver "
                "(apt-get install chromium chromium-driver)", allow_module_level=True)


@pytest.fixture(scope="module")
def browser():
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for argument in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage",
                     "--disable-gpu", "--window-size=1366,900"):
        options.add_argument(argument)
    driver = webdriver.Chrome(service=Service(CHROMEDRIVER), options=options)
    driver.set_page_load_timeout(30)
    yield driver
    driver.quit()


@pytest.fixture
def open_page(browser, live):
    def visit(path):
        browser.get(live.url + path)
        return browser

    return visit


def button(scope, label):
    (found,) = [b for b in scope.find_elements(By.CSS_SELECTOR, "button") if b.text == label]
    return found


def _replaced(page):
    """A wait condition: ``page`` (the old document's root) is gone. Caught mid-replacement,
    chromedriver may answer "does not belong to the document" instead of a stale element:
    that is gone too."""

    def gone(_browser):
        try:
            page.is_enabled()
        except StaleElementReferenceException:
            return True
        except WebDriverException as e:
            if "does not belong to the document" in str(e):
                return True
            raise
        return False

    return gone


def follow(browser, element):
    """Click a link or a form's button and wait until the page it leads to has replaced this one."""
    page = browser.find_element(By.TAG_NAME, "html")
    element.click()
    WebDriverWait(browser, 20).until(_replaced(page))
    WebDriverWait(browser, 20).until(
        lambda b: b.execute_script("return document.readyState") == "complete")


def notice(browser):
    return browser.find_element(By.CSS_SELECTOR, ".notice").text


def test_navigation_links_the_console_and_the_queue_dashboard_both_ways(open_page):
    browser = open_page("/admin/")
    assert browser.find_element(By.CSS_SELECTOR, "h1").text.startswith("Overview")
    follow(browser, browser.find_element(By.LINK_TEXT, "Queues ↗"))
    assert browser.current_url.endswith("/admin/queues/")
    back = browser.find_element(By.CSS_SELECTOR, 'nav a[href="/admin/"]')
    assert back.text.lower() == "scheduler console"
    follow(browser, back)
    assert browser.current_url.endswith("/admin/")
    for label, heading in (("Schedules", "Schedules"), ("Timers", "Timers"), ("Jobs", "Jobs")):
        follow(browser, browser.find_element(By.LINK_TEXT, label))
        assert browser.find_element(By.CSS_SELECTOR, "h1").text == heading


def test_run_now_shows_up_as_a_run_whose_job_succeeds(open_page, live):
    with running_worker(live.services, threads=2):
        # Given the schedule page of a sweep
        browser = open_page("/admin/schedules")
        follow(browser, browser.find_element(By.LINK_TEXT, "sample-tick"))
        assert browser.find_element(By.CSS_SELECTOR, "h1").text.startswith("sample-tick")
        # When the operator clicks Run now
        follow(browser, button(browser, "Run now"))
        # Then the page says so and lists the run, manual, with its job
        assert notice(browser) == "Enqueued a run of sample-tick."
        run = browser.find_element(By.CSS_SELECTOR, "#runs tbody tr")
        assert "manual" in run.text and "enqueued" in run.text and "run by console" in run.text

        # and once a worker ran the job, a reload shows it succeeded
        def succeeded():
            browser.refresh()
            row = browser.find_element(By.CSS_SELECTOR, "#runs tbody tr")
            return "succeeded" in row.text and row

        row = wait_for(succeeded, timeout=20, interval=0.3, message="the run's job to succeed")
    follow(browser, row.find_element(By.CSS_SELECTOR, "a.mono"))
    assert "SAMPLE_ECHO" in browser.find_element(By.ID, "record").text
    assert '"echo": "tick"' in browser.find_element(By.ID, "result").text
    assert "running" in browser.find_element(By.ID, "transitions").text


def test_cancel_removes_a_timer(open_page, live):
    # Given a job created over the REST API for an hour from now
    due = (datetime.now(timezone.utc) + timedelta(hours=1)).isoformat()
    created = requests.post(f"{live.url}/api/v1/jobs", timeout=10,
                            headers={"Authorization": f"Bearer {live.token}"},
                            json={"type": "PING", "campaignId": "browser", "runAt": due}).json()
    browser = open_page("/admin/timers")
    row = browser.find_element(By.CSS_SELECTOR, f'#wall tr[data-job="{created["id"]}"]')
    assert "PING" in row.text
    # When the operator cancels it
    follow(browser, button(row, "Cancel"))
    # Then the timer is gone from the page and from the store
    assert notice(browser) == f"Cancelled job {created['id']}."
    assert not browser.find_elements(By.CSS_SELECTOR, f'tr[data-job="{created["id"]}"]')
    assert live.services.jobs.get(created["id"])["state"] == "cancelled"
    assert created["id"] not in [i for i, _ in live.services.jobs.waiting_timers(None, 1000)[1]]


def test_a_dead_letter_found_by_filter_is_requeued_with_an_edited_payload(open_page, live):
    # Given a dead SAMPLE_ECHO job whose payload was wrong
    job, _ = send_job(live.services, "SAMPLE_ECHO", "browser-dead", {"text": "typo"},
                      run_at_ms=now_ms() + 3_600_000)
    assert live.services.jobs.transition(job["id"], ("scheduled",), "dead", "test", deadLetter="1").ok
    # When the operator filters the jobs to the dead ones of that campaign
    browser = open_page("/admin/jobs")
    Select(browser.find_element(By.NAME, "state")).select_by_value("dead")
    browser.find_element(By.NAME, "campaign").send_keys("browser-dead")
    follow(browser, button(browser.find_element(By.ID, "filters"), "Filter"))
    rows = browser.find_elements(By.CSS_SELECTOR, "#jobs tbody tr")
    assert [r.get_attribute("data-job") for r in rows] == [job["id"]]
    follow(browser, rows[0].find_element(By.CSS_SELECTOR, "a.mono"))
    # and requeues it with a payload the job type refuses, then with a good one
    editor = browser.find_element(By.ID, "payload-edit")
    editor.clear()
    editor.send_keys('{"text": ""}')
    follow(browser, button(browser.find_element(By.ID, "dead-letter"), "Requeue"))
    assert "payload.text" in browser.find_element(By.CSS_SELECTOR, "#dead-letter .error").text
    assert live.services.jobs.get(job["id"])["state"] == "dead"
    editor = browser.find_element(By.ID, "payload-edit")
    editor.clear()
    editor.send_keys('{"text": "fixed"}')
    follow(browser, button(browser.find_element(By.ID, "dead-letter"), "Requeue"))
    # Then it is queued again with the new payload
    assert notice(browser) == f"Requeued job {job['id']}."
    record = live.services.jobs.get(job["id"])
    assert record["state"] == "queued" and record["payload"] == {"text": "fixed"}
    assert '"text": "fixed"' in browser.find_element(By.ID, "payload").text


def test_deleting_a_message_in_the_queue_dashboard_cancels_its_job(open_page, live):
    # Given a queued job, its message on the dashboard's standard tab
    job, _ = send_job(live.services, "SAMPLE_ECHO", "browser-dash", {"text": "delete me"})
    queue, rid = live.services.jobs.get_internal(job["id"], "queue", "rid")
    browser = open_page(f"/admin/queues/queues/{queue}/standard")
    delete = browser.find_element(By.XPATH, f'//form[contains(@action, "delete-message")]'
                                            f'[.//input[@name="id" and @value="{rid}"]]//button')
    assert delete.get_attribute("textContent").strip() == "Delete"
    # When the operator clicks its Delete button
    follow(browser, delete)
    # Then the browser is back on the tab, the message gone and the job cancelled by the dashboard
    assert browser.current_url.endswith(f"/admin/queues/queues/{queue}/standard")
    assert rid not in browser.page_source
    record = live.services.jobs.get(job["id"])
    assert record["state"] == "cancelled"
    assert "queue dashboard by dashboard" in live.services.jobs.history(job["id"])[-1]["detail"]
