"""The operator console in a real browser: Debian's headless Chromium driven by Selenium through
chromedriver (scripts/setup-browser.sh installs both; a failure there fails these tests).

A gateway with an admin token and a promotion policy whose gate fails: without the token the
console shows the sign-in form and no data; signed in, the models page shows the live weights; a
lineage lookup shows a request's chain; promotion shows the gate table, is refused when a gate
fails, and goes through forced (recorded with the operator's name) and appears on the timeline;
no page logs a console error. With SWITCHYARD_CONSOLE_SHOTS=DIR the pages' screenshots are
written there (docs/console/ holds the committed ones).
"""

from __future__ import annotations

import os
import re
import subprocess
from pathlib import Path

import pytest
import requests

from conftest import MANIFESTS, MODELS, REPO, mlp_json_body, register, start_server, stop_server

TOKEN = "console-token-0123456789"


@pytest.fixture(scope="module")
def browser_paths() -> tuple[str, str]:
    proc = subprocess.run([str(REPO / "scripts" / "setup-browser.sh")], capture_output=True, text=True, timeout=900)
    if proc.returncode != 0:
        pytest.fail(f"scripts/setup-browser.sh exited {proc.returncode}:\n{proc.stderr[-4000:]}", pytrace=False)
    m = re.fullmatch(r"chromium=(\S+) chromedriver=(\S+)", proc.stdout.strip().splitlines()[-1])
    assert m, proc.stdout
    return m[1], m[2]


@pytest.fixture
def driver(browser_paths):
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    chromium, chromedriver = browser_paths
    options = webdriver.ChromeOptions()
    options.binary_location = chromium
    for arg in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--window-size=1280,900"):
        options.add_argument(arg)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    d = webdriver.Chrome(service=Service(chromedriver), options=options)
    d.set_page_load_timeout(30)
    try:
        yield d
    finally:
        d.quit()


def shot(driver, name: str) -> None:
    target = os.environ.get("SWITCHYARD_CONSOLE_SHOTS")
    if target:
        Path(target).mkdir(parents=True, exist_ok=True)
        driver.save_screenshot(str(Path(target) / f"{name}.png"))


def console_errors(driver) -> list[str]:
    """Errors the pages logged, less the one the test provokes on purpose: Chromium logs the
    admin API's 409 for the promotion refused by its gates as a failed resource load."""
    return [
        e["message"]
        for e in driver.get_log("browser")
        if e["level"] == "SEVERE" and not ("/admin/models/mlp/promote" in e["message"] and "409" in e["message"])
    ]


def test_the_console_shows_routing_lineage_and_gated_promotion_in_a_real_browser(driver, tmp_path):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support import expected_conditions as ec
    from selenium.webdriver.support.ui import Select, WebDriverWait

    # A store of its own: the promotion this test makes is stored as a routing override, which a
    # shared store would carry into other tests' gateways with the same configured routing.
    store = tmp_path / "store"
    for v in (1, 2, 3):
        register(store, "mlp", MODELS / f"mlp_v{v}.onnx", MANIFESTS / f"mlp_v{v}.toml")
    config = tmp_path / "console.toml"
    config.write_text(
        f'[server]\nlisten = "127.0.0.1:0"\nadmin_listen = "127.0.0.1:0"\nadmin_token = "{TOKEN}"\n'
        f'[store]\npath = "{store}"\n[[model]]\nname = "mlp"\nversions = [1, 2, 3]\n'
        "[model.routing]\nchampion = 1\nchallengers = { 2 = 20 }\n[model.promotion]\nmin_requests = 100000\n"
    )
    srv = start_server(config, store, tmp_path / "console.log")
    wait = WebDriverWait(driver, 15)
    try:
        r = requests.post(srv.public + "/v2/models/mlp/infer", json=mlp_json_body(1, 3), headers={"x-request-id": "console-req-1"}, timeout=10)
        assert r.status_code == 200, r.text

        # Without the token: the sign-in form, and no data.
        driver.get(srv.admin + "/ui")
        wait.until(ec.visibility_of_element_located((By.ID, "login-form")))
        assert "v2 20%" not in driver.page_source
        shot(driver, "sign-in")
        driver.find_element(By.ID, "token").send_keys(TOKEN)
        driver.find_element(By.ID, "operator").send_keys("dana")
        driver.find_element(By.CSS_SELECTOR, "#login-form button").click()

        # The models page: the live weights.
        wait.until(ec.text_to_be_present_in_element((By.CSS_SELECTOR, "[data-test=challengers]"), "v2 20%"))
        assert "Signed in as dana" in driver.find_element(By.ID, "who").text
        # Live time series: traffic sent now shows in the champion's requests/s trend.
        for i in range(60):
            assert requests.post(srv.public + "/v2/models/mlp/infer", json=mlp_json_body(1, i), timeout=10).status_code == 200

        def champion_rate_moves(d):
            svg = d.find_element(By.CSS_SELECTOR, "svg[data-series=requests_per_s]")
            return max(float(x) for x in (svg.get_attribute("data-values") or "0").split()) >= 5

        wait.until(champion_rate_moves)
        assert driver.find_elements(By.CSS_SELECTOR, "svg[data-series=p99_ms] polyline")
        shot(driver, "models")

        # Lineage: the whole chain of a request.
        driver.get(srv.admin + "/ui#/lineage/console-req-1")
        wait.until(ec.text_to_be_present_in_element((By.ID, "lineage-result"), "mlp v"))
        assert "Training: code" in driver.find_element(By.ID, "lineage-result").text
        shot(driver, "lineage")

        # Promotion: the gate table first; refused while a gate fails; forced, recorded.
        driver.get(srv.admin + "/ui#/model/mlp")
        wait.until(ec.presence_of_element_located((By.ID, "promote-version")))
        Select(driver.find_element(By.ID, "promote-version")).select_by_value("2")
        driver.find_element(By.CSS_SELECTOR, "#promote-form button[type=submit]").click()
        wait.until(ec.text_to_be_present_in_element((By.ID, "action-result"), "FAIL"))
        shot(driver, "gates")
        driver.find_element(By.ID, "confirm-promote").click()
        wait.until(ec.text_to_be_present_in_element((By.ID, "action-result"), "refused"))
        assert "gates failed" in driver.find_element(By.ID, "action-result").text
        state = requests.get(srv.admin + "/admin/models/mlp", headers={"Authorization": f"Bearer {TOKEN}"}, timeout=10).json()
        assert state["routing"]["champion"] == 1, "refused: nothing changed"
        driver.find_element(By.CSS_SELECTOR, "#promote-form button[type=submit]").click()
        wait.until(ec.presence_of_element_located((By.ID, "force")))
        driver.find_element(By.ID, "force").click()
        driver.find_element(By.ID, "confirm-promote").click()
        wait.until(ec.text_to_be_present_in_element((By.ID, "action-result"), "done"))
        state = requests.get(srv.admin + "/admin/models/mlp", headers={"Authorization": f"Bearer {TOKEN}"}, timeout=10).json()
        assert state["routing"]["champion"] == 2
        assert state["origin"]["actor"] == "console:dana"
        driver.get(srv.admin + "/ui#/model/mlp")
        driver.refresh()
        wait.until(ec.text_to_be_present_in_element((By.ID, "timeline"), "promoted"))
        shot(driver, "model")
        assert console_errors(driver) == []
    finally:
        assert stop_server(srv) == 0


def test_a_guard_trip_under_load_appears_on_the_console_timeline(driver, tmp_path):
    """A real fault: the champion (the faulty fixture) fails inside ONNX Runtime on every third
    request while the model page is open; the guard swaps to the backup, and the page, which polls
    on its own, shows the trip on its timeline and the backup serving within a few seconds."""
    import threading
    import time

    from selenium.webdriver.common.by import By
    from selenium.webdriver.support import expected_conditions as ec
    from selenium.webdriver.support.ui import WebDriverWait

    store = tmp_path / "store"
    register(store, "scorer", MODELS / "faulty.onnx")
    register(store, "scorer", MODELS / "mlp_v2.onnx", MANIFESTS / "mlp_v2.toml")
    config = tmp_path / "guarded.toml"
    config.write_text(
        f'[server]\nlisten = "127.0.0.1:0"\nadmin_listen = "127.0.0.1:0"\nadmin_token = "{TOKEN}"\n'
        f'[store]\npath = "{store}"\n[[model]]\nname = "scorer"\nversions = [1, 2]\n'
        "[model.routing]\nchampion = 1\nbackup = [2]\n"
        '[model.guard]\nwindow = "10s"\ninterval = "500ms"\ncooldown = "60s"\nmin_requests = 20\nmax_error_rate = 0.2\n'
    )
    srv = start_server(config, store, tmp_path / "guarded.log")
    good, bad = mlp_json_body(1, 5), mlp_json_body(1, 5)
    bad["inputs"][0]["data"][0] = 5000.0  # column 0 >= 1000: the faulty model's run fails
    stop = threading.Event()
    sent = {"n": 0, "failed": 0}

    def load() -> None:
        # Bounded in count and time; one client is enough for a 33 % error rate.
        deadline = time.monotonic() + 30
        with requests.Session() as s:
            while not stop.is_set() and time.monotonic() < deadline and sent["n"] < 20000:
                r = s.post(srv.public + "/v2/models/scorer/infer", json=bad if sent["n"] % 3 == 0 else good, timeout=10)
                sent["n"] += 1
                sent["failed"] += r.status_code != 200

    wait = WebDriverWait(driver, 15)
    try:
        driver.get(srv.admin + "/ui")
        wait.until(ec.visibility_of_element_located((By.ID, "login-form")))
        driver.find_element(By.ID, "token").send_keys(TOKEN)
        driver.find_element(By.ID, "operator").send_keys("dana")
        driver.find_element(By.CSS_SELECTOR, "#login-form button").click()
        driver.get(srv.admin + "/ui#/model/scorer")
        wait.until(ec.presence_of_element_located((By.ID, "timeline")))
        assert "guard_trip" not in driver.find_element(By.ID, "timeline").text

        loader = threading.Thread(target=load, daemon=True)
        loader.start()
        # The page is not reloaded: its own polling must bring the trip in.
        WebDriverWait(driver, 20, poll_frequency=0.25).until(
            ec.text_to_be_present_in_element((By.ID, "timeline"), "guard_trip")
        )
        row = next(r for r in driver.find_elements(By.CSS_SELECTOR, "#timeline tbody tr") if "guard_trip" in r.text)
        assert "guard" in row.text, row.text
        assert sent["failed"] > 0, "the faulty champion failed nothing before the trip"
        state = requests.get(srv.admin + "/admin/models/scorer", headers={"Authorization": f"Bearer {TOKEN}"}, timeout=10).json()
        assert state["routing"]["champion"] == 2, state["routing"]
        WebDriverWait(driver, 10).until(lambda d: "v2" in d.find_element(By.CSS_SELECTOR, ".card table tbody").text)
        assert console_errors(driver) == []
    finally:
        stop.set()
        assert stop_server(srv) == 0
