"""The dashboard in a real browser: Debian's Chromium, driven by Playwright, against the local
app on uvicorn (agents in-process, a real governor). Each role signs in and sees only what it
may see and do; the plots fill while a simulator scenario posts runs and outcomes; ML ops
approve a proposal, an operator rolls back; a role without the right gets a 403 from the API.
Screenshots of each page go to the test's folder (and, with FLYWHEEL_UPDATE_SCREENSHOT=1, the overview
to docs/dashboard.png)."""

from __future__ import annotations

import asyncio
import os
import shutil
import threading
from pathlib import Path

import httpx
import pytest
from playwright.sync_api import Page, expect, sync_playwright

from flywheel.cli.demo import DemoDriver
from flywheel.cli.local_server import local_api
from flywheel.ledger import Ledger
from tests.services.http.test_governance_http import WF, _propose
from tests.services.local_service import local_settings, serving

CHROMIUM = "/usr/bin/chromium"
ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
        "--disable-component-update", "--disable-sync"]
README_SHOT = Path(__file__).resolve().parents[2] / "docs" / "dashboard.png"


@pytest.fixture(scope="module")
def service(tmp_path_factory):
    """(base url, settings, {role: secret}) of the local app served by uvicorn in a thread."""
    root = tmp_path_factory.mktemp("dashboard")
    settings = local_settings(root, poll_s=0.1, publish_every_outcomes=10**9, publish_every_s=10**6)
    ledger = Ledger(settings.resolved_database_url())
    ledger.upgrade()
    secrets = {role: ledger.create_token(role, name=f"ui-{role}", created_by="tests")[1]
               for role in ("service", "mlops", "operator")}
    ledger.dispose()
    with serving(local_api(settings, learning=True), timeout_s=60) as address:
        yield f"http://{address}", settings, secrets


@pytest.fixture(scope="module")
def browser():
    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        yield b
        b.close()


@pytest.fixture
def sign_in(service, browser):
    """sign_in(role) -> a page signed in with that role's token (dialogs accepted)."""
    url, _, secrets = service
    pages: list[Page] = []
    errors: list[str] = []

    def open_as(role: str) -> Page:
        page = browser.new_page(viewport={"width": 1280, "height": 900})
        page.on("dialog", lambda d: d.accept())
        page.on("pageerror", lambda e: errors.append(str(e)))
        page.goto(f"{url}/ui")
        page.fill("#token", secrets[role])
        page.click("#signin-form button")
        expect(page.locator("#who")).to_contain_text(f"({role})")
        if role != "service":
            page.select_option("#workflow", WF)
        pages.append(page)
        return page

    yield open_as
    for page in pages:
        page.close()
    assert errors == [], "the page's scripts failed"


def _api(service, role: str) -> httpx.Client:
    url, _, secrets = service
    return httpx.Client(base_url=url, headers={"Authorization": f"Bearer {secrets[role]}"}, timeout=30)


def test_plots_fill_as_a_scenario_runs_and_mlops_approves(service, sign_in, tmp_path):
    url, settings, secrets = service
    page = sign_in("mlops")
    expect(page.locator("#overview svg")).to_have_count(4)
    assert int(page.locator("#status").get_attribute("data-runs")) == 0
    driver = DemoDriver(url, settings.simulator, token=secrets["service"])
    traffic = threading.Thread(target=lambda: asyncio.run(driver.run(160, concurrency=4)), daemon=True)
    traffic.start()
    page.wait_for_function("Number(document.querySelector('#status').dataset.runs) >= 10", timeout=90_000)
    traffic.join(timeout=300)
    with _api(service, "mlops") as api:  # the scenario spreads its runs over the workflows
        ran = api.get(f"/v1/workflows/{WF}/stats").json()["runs"]
    assert ran > 10
    expect(page.locator("#status")).to_have_attribute("data-runs", str(ran), timeout=20_000)
    runs_line = page.locator("#chart-runs path.line")
    assert int(runs_line.get_attribute("data-points")) >= 1
    assert page.locator("#chart-shares path.area").count() == 4  # one stacked band per arm
    assert int(page.locator("#chart-reward path.line").get_attribute("data-points")) >= 1

    first = _propose(settings)  # auto-promoted: a version change marked on the time axis
    pending = _propose(settings, temperature=2.5)  # needs review by policy
    page.select_option("#window", "900")
    expect(page.locator("#chart-runs .mark-version").first).to_be_attached(timeout=10_000)
    page.screenshot(path=str(tmp_path / "overview.png"), full_page=True)
    if os.environ.get("FLYWHEEL_UPDATE_SCREENSHOT") == "1":  # refresh the README's picture on request only
        README_SHOT.parent.mkdir(exist_ok=True)
        shutil.copyfile(tmp_path / "overview.png", README_SHOT)

    page.click("button[data-page=review]")
    card = page.locator(f".proposal[data-version='{pending}']")
    expect(card).to_contain_text("routing.temperature")
    expect(card).to_contain_text("Estimated gain")
    page.fill(f"[data-testid=reason-{pending}]", "reviewed the diff and the evidence")
    page.screenshot(path=str(tmp_path / "review.png"), full_page=True)
    page.click(f"[data-testid=approve-{pending}]")
    expect(page.locator("#proposals")).to_contain_text("No proposal waits", timeout=15_000)
    with _api(service, "mlops") as api:
        history = api.get(f"/v1/workflows/{WF}/history").json()
    assert [v["number"] for v in history["versions"] if v["champion"]] == [pending]
    assert history["events"][-1]["action"] == "approve" and history["events"][-1]["actor"] == "ui-mlops"

    page.click("button[data-page=versions]")
    expect(page.locator(f"#version-table tr[data-version='{first}']")).to_be_visible()
    assert page.locator("[data-testid^=pin-]").count() == 0 and page.locator("#operate").is_hidden()
    page.click(f"#version-table tr[data-version='{pending}']")
    expect(page.locator("#version-detail")).to_contain_text("approved")
    page.screenshot(path=str(tmp_path / "versions.png"), full_page=True)

    page.click("button[data-page=runs]")
    page.select_option("#f-status", "completed")
    page.click("#f-apply")
    page.wait_for_function("""() => {
        const cells = [...document.querySelectorAll('#run-table tbody td:nth-child(2)')];
        return cells.length > 0 && cells.every((c) => c.textContent === 'completed');
    }""", timeout=10_000)
    rows = page.locator("#run-table tbody tr")
    rows.first.click()
    expect(page.locator("#trace")).to_contain_text("trace id")
    expect(page.locator("#trace")).to_contain_text("threshold")
    page.screenshot(path=str(tmp_path / "runs.png"), full_page=True)

    page.click("button[data-page=audit]")
    expect(page.locator("#audit-verify")).to_contain_text("Audit chain verified")
    expect(page.locator("#audit-table")).to_contain_text("approve")
    page.screenshot(path=str(tmp_path / "audit.png"), full_page=True)
    assert {p.name for p in tmp_path.glob("*.png")} == {"overview.png", "review.png", "versions.png",
                                                       "runs.png", "audit.png"}


def test_operator_rolls_back_and_cannot_approve(service, sign_in, tmp_path):
    page = sign_in("operator")
    page.click("button[data-page=review]")
    expect(page.locator("#proposals")).to_be_visible()
    assert page.locator("[data-testid^=approve-]").count() == 0
    page.click("button[data-page=versions]")
    expect(page.locator("#operate")).to_be_visible()
    with _api(service, "operator") as api:
        before = [v["number"] for v in api.get(f"/v1/workflows/{WF}/history").json()["versions"] if v["champion"]]
        assert api.post(f"/v1/workflows/{WF}/versions/{before[0]}/approve",
                        json={"reason": "not mine to do"}).status_code == 403
    page.fill("#op-reason", "the new temperature answers worse")
    page.click("#rollback")
    expect(page.locator("#op-result")).to_contain_text("rollback", timeout=15_000)
    page.screenshot(path=str(tmp_path / "operator.png"), full_page=True)
    with _api(service, "operator") as api:
        after = api.get(f"/v1/workflows/{WF}/history").json()
    live = [v["number"] for v in after["versions"] if v["champion"]]
    assert live != before and after["events"][-1]["action"] == "rollback"
    assert after["events"][-1]["actor"] == "ui-operator"


def test_roles_without_rights_see_nothing_and_get_403(service, sign_in, tmp_path):
    page = sign_in("service")
    expect(page.locator("#denied")).to_contain_text("no view")
    assert page.locator("#nav button:visible").count() == 0
    page.screenshot(path=str(tmp_path / "service.png"))
    with _api(service, "service") as api:
        assert api.get(f"/v1/dashboard/workflows/{WF}/series").status_code == 403
        assert api.get("/v1/proposals").status_code == 403
    with _api(service, "mlops") as api:
        assert api.post(f"/v1/workflows/{WF}/rollback", json={"reason": "x"}).status_code == 403
        assert api.post(f"/v1/workflows/{WF}/pin", json={"version": 1, "reason": "x"}).status_code == 403
    with httpx.Client(base_url=service[0]) as anonymous:
        assert anonymous.get("/ui").status_code == 200  # the page itself; its data needs a token
        assert anonymous.get(f"/v1/dashboard/workflows/{WF}/series").status_code == 401
