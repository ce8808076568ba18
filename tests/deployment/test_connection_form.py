"""The Doto connection form in the real Airflow UI, driven by headless Chromium.

Needs Debian's ``chromium`` and ``chromium-driver`` (``.ci/deployment-prereqs.sh`` installs them);
skipped with the reason when they are missing. Never downloads a browser or driver. Saves
``artifacts/connection-form.png`` (both sections of the form side by side); set
``DOTO_UPDATE_DOCS_SCREENSHOT=1`` to also refresh ``docs/img/connection-form.png`` for the README.
"""

from __future__ import annotations

import base64
import json
import os
import shutil
import struct
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from airflow_provider_doto.testing.stack import AirflowStack

from .conftest import ARTIFACTS, REPO

pytestmark = pytest.mark.deployment

CHROMIUM = Path(os.environ.get("DOTO_CHROMIUM", "/usr/bin/chromium"))
CHROMEDRIVER = Path(os.environ.get("DOTO_CHROMEDRIVER", "/usr/bin/chromedriver"))
# No outside network here: without these Chromium stalls on refused background connections.
CHROMIUM_FLAGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-dev-shm-usage",
    "--window-size=2400,1400",
)
WAIT = 60  # seconds, for any one UI element


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    if not (CHROMIUM.exists() and CHROMEDRIVER.exists()):
        pytest.skip(
            f"no Chromium: {CHROMIUM} and {CHROMEDRIVER} are needed "
            "(apt-get install chromium chromium-driver, or run .ci/deployment-prereqs.sh)"
        )
    webdriver = pytest.importorskip(
        "selenium.webdriver", reason="selenium is not installed (the deploy extra)"
    )
    from selenium.webdriver.chrome.service import Service

    os.environ.setdefault("SE_OFFLINE", "true")  # Selenium Manager must never try to download anything
    profile = tempfile.mkdtemp(prefix="doto-chromium-")
    options = webdriver.ChromeOptions()
    options.binary_location = str(CHROMIUM)
    for flag in (*CHROMIUM_FLAGS, f"--user-data-dir={profile}"):
        options.add_argument(flag)
    service = Service(str(CHROMEDRIVER), log_output=str(Path(profile) / "chromedriver.log"))
    driver = webdriver.Chrome(
        options=options, service=service
    )  # chromedriver's own process, stopped by quit()
    driver.set_page_load_timeout(WAIT)
    try:
        yield driver
    finally:
        driver.quit()
        shutil.rmtree(profile, ignore_errors=True)


def png_size(png: bytes) -> tuple[int, int]:
    width, height = struct.unpack(">II", png[16:24])
    return width, height


def side_by_side(driver: Any, left: bytes, right: bytes, gap: int = 24) -> bytes:
    """One PNG with both images next to each other, rendered by the same browser (no imaging library)."""
    (w1, h1), (w2, h2) = png_size(left), png_size(right)
    html = (
        "<html><body style='margin:0;background:#fff'>"
        f"<div id='both' style='display:flex;gap:{gap}px;align-items:flex-start;background:#fff;"
        f"width:{w1 + w2 + gap}px;height:{max(h1, h2)}px'>"
        f"<img width='{w1}' height='{h1}' src='data:image/png;base64,{base64.b64encode(left).decode()}'>"
        f"<img width='{w2}' height='{h2}' src='data:image/png;base64,{base64.b64encode(right).decode()}'>"
        "</div></body></html>"
    )
    with tempfile.NamedTemporaryFile("w", suffix=".html", delete=False) as page:
        page.write(html)
    try:
        driver.get(Path(page.name).as_uri())
        from selenium.webdriver.common.by import By

        return bytes(driver.find_element(By.ID, "both").screenshot_as_png)
    finally:
        os.unlink(page.name)


def test_hook_meta_serves_the_doto_form(stack: AirflowStack) -> None:
    """The UI builds the form from /ui/connections/hook_meta (on 3.3 from provider info)."""
    token = stack.api_token()
    response = stack._session.get(
        f"{stack.base_url}/ui/connections/hook_meta", headers={"Authorization": f"Bearer {token}"}, timeout=30
    )
    response.raise_for_status()
    [doto] = [entry for entry in response.json() if entry["connection_type"] == "doto"]
    standard = doto["standard_fields"]
    assert (standard["host"]["title"], standard["host"]["hidden"]) == ("Base URL", False)
    assert (standard["password"]["title"], standard["password"]["hidden"]) == ("API Token", False)
    assert standard["login"]["hidden"] and standard["port"]["hidden"] and standard["url_schema"]["hidden"]
    extra = doto["extra_fields"]
    assert extra["account_id"]["schema"]["title"] == "Account ID"
    assert extra["timeout"]["schema"]["title"] == "Request timeout (seconds)"
    assert extra["timeout"]["value"] == 30


def test_connection_form_in_chromium(stack: AirflowStack, browser: Any) -> None:
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support import expected_conditions as ec
    from selenium.webdriver.support.ui import WebDriverWait

    wait = WebDriverWait(browser, WAIT)

    def visible_labels(root: Any) -> set[str]:
        labels = root.find_elements(By.TAG_NAME, "label")
        return {label.text.replace("*", "").strip() for label in labels if label.is_displayed()}

    def displayed(root: Any, name: str) -> bool:
        return any(e.is_displayed() for e in root.find_elements(By.NAME, name))

    # SimpleAuthManager with all admins signs the browser in on the first visit.
    browser.get(stack.base_url + "/connections")
    wait.until(ec.element_to_be_clickable((By.XPATH, "//button[contains(., 'Add Connection')]"))).click()
    dialog = wait.until(ec.visibility_of_element_located((By.CSS_SELECTOR, "[role=dialog]")))
    dialog.find_element(By.NAME, "connection_id").send_keys("doto_from_the_form")
    dialog.find_element(By.CSS_SELECTOR, "input[role=combobox]").send_keys("Doto")
    wait.until(
        ec.element_to_be_clickable((By.XPATH, "//*[@role='option'][normalize-space()='Doto']"))
    ).click()

    # Standard fields: host and password relabelled, with placeholders; schema, port, login gone.
    wait.until(lambda _: "Base URL" in visible_labels(dialog))
    labels = visible_labels(dialog)
    assert {"Base URL", "API Token"} <= labels, labels
    assert not labels & {"Host", "Password", "Login", "Port", "Schema"}, labels
    assert dialog.find_element(By.NAME, "host").get_attribute("placeholder") == "https://app.usendoto.com"
    assert dialog.find_element(By.NAME, "password").get_attribute("type") == "password"
    for hidden in ("login", "port", "schema"):
        assert not displayed(dialog, hidden), hidden

    # Extra fields: our conn-fields, with the timeout's default. (Airflow 3.3 always offers the raw
    # "Extra Fields JSON" section too, collapsed: hidden-fields cannot remove it.)
    dialog.find_element(
        By.XPATH, ".//button[contains(., 'Extra Fields') and not(contains(., 'JSON'))]"
    ).click()
    wait.until(lambda _: displayed(dialog, "element_account_id"))
    labels = visible_labels(dialog)
    assert {"Account ID", "Request timeout (seconds)", "Server flavor"} <= labels, labels
    assert dialog.find_element(By.NAME, "element_timeout").get_attribute("value") == "30"
    dialog.find_element(By.NAME, "element_account_id").send_keys("1")
    extra_png = dialog.screenshot_as_png

    # Back to the standard fields, filled in (the screenshot's left half).
    dialog.find_element(By.XPATH, ".//button[contains(., 'Standard Fields')]").click()
    wait.until(lambda _: displayed(dialog, "host"))
    dialog.find_element(By.NAME, "host").send_keys("https://app.usendoto.com")
    dialog.find_element(By.NAME, "password").send_keys("not-a-real-token")
    dialog.find_element(By.NAME, "connection_id").click()  # move the focus off the token field
    standard_png = dialog.screenshot_as_png

    # Save: the form yields a Doto connection the hook can read.
    save = dialog.find_element(By.XPATH, ".//button[contains(., 'Save')]")
    wait.until(lambda _: save.is_enabled())
    save.click()
    wait.until(ec.invisibility_of_element_located((By.CSS_SELECTOR, "[role=dialog]")))  # saved
    saved = stack.api("GET", "/connections/doto_from_the_form")
    assert (saved["conn_type"], saved["host"]) == ("doto", "https://app.usendoto.com")
    assert saved["password"] == "***"  # stored, and masked by the API
    extra = json.loads(saved["extra"])
    assert (str(extra["account_id"]), extra["timeout"]) == ("1", 30)  # the UI may store the id as a number
    assert extra.get("flavor", "auto") == "auto"

    screenshot = side_by_side(browser, standard_png, extra_png)
    ARTIFACTS.mkdir(exist_ok=True)
    (ARTIFACTS / "connection-form.png").write_bytes(screenshot)
    if os.environ.get("DOTO_UPDATE_DOCS_SCREENSHOT") == "1":
        (REPO / "docs" / "img").mkdir(parents=True, exist_ok=True)
        (REPO / "docs" / "img" / "connection-form.png").write_bytes(screenshot)
