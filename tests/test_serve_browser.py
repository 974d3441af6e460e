"""The gallery in a real browser: headless Chromium (Debian's `chromium` and `chromium-driver`,
driven by Selenium) against a server on a free loopback port, on the tiny profile.

A person's path: the gallery lists a drawn picture with its seed; the draw form draws a new one
and the page shows it when it is done; its run page replays it. Screenshots of the gallery and
of a run page are saved in the test's folder; with VISIONLOOP_SCREENSHOTS=DIR (e.g. `docs`) also
there, as the README's pictures are made.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

from serve_helpers import live_server

pytestmark = [pytest.mark.needs("fastapi", "uvicorn", "jinja2", "python_multipart", "httpx", "selenium",
                                "chromium", "chromedriver"),
              pytest.mark.usefixtures("one_torch_thread")]

WAIT = 30  # seconds for anything the page waits on


@pytest.fixture
def browser():
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = shutil.which("chromium")
    for flag in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                 "--window-size=1100,820", "--no-first-run", "--disable-extensions"):
        options.add_argument(flag)
    driver = webdriver.Chrome(options=options, service=Service(shutil.which("chromedriver")))
    driver.set_page_load_timeout(WAIT)
    yield driver
    driver.quit()


def screenshot(driver, tmp_path: Path, name: str) -> None:
    path = tmp_path / name
    driver.save_screenshot(str(path))
    assert path.stat().st_size > 1000
    keep = os.environ.get("VISIONLOOP_SCREENSHOTS")
    if keep:
        shutil.copy(path, Path(keep) / name)


def test_gallery_form_and_replay_in_chromium(browser, loop, tiny_config, registry, tmp_path):
    import httpx
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support import expected_conditions as seen
    from selenium.webdriver.support.ui import WebDriverWait

    from visionloop.server.app import build_server

    server = build_server(tiny_config, registry, tmp_path / "out", loop=loop)
    wait = WebDriverWait(browser, WAIT)
    try:
        with live_server(server) as url:
            for prompt, seed in (("a lighthouse at dusk", 12345), ("a red boat", 2024), ("a quiet harbour", 7)):
                r = httpx.post(f"{url}/api/tools/draw?wait=true", json={"prompt": prompt, "seed": seed}, timeout=120)
                assert r.status_code == 200 and r.json()["error"] is None

            # 1. The gallery lists the pictures, each with its seed.
            browser.get(f"{url}/")
            cards = wait.until(lambda d: d.find_elements(By.CSS_SELECTOR, "#runs .card"))
            assert len(cards) == 3
            assert "seed 12345" in browser.find_element(By.ID, "runs").text
            wait.until(lambda d: d.execute_script(
                "return [...document.querySelectorAll('#runs img')].every(i => i.complete && i.naturalWidth > 0)"))
            screenshot(browser, tmp_path, "gallery.png")

            # 2. The draw form draws a new picture; the page shows it when it is done.
            browser.get(f"{url}/tools/draw")
            browser.find_element(By.NAME, "prompt").send_keys("a lighthouse in the fog")
            browser.find_element(By.NAME, "seed").send_keys("777")
            browser.find_element(By.ID, "run").click()
            made = wait.until(seen.visibility_of_element_located((By.CSS_SELECTOR, "#result img.made")))
            wait.until(lambda d: d.execute_script("return arguments[0].complete && arguments[0].naturalWidth > 0", made))
            assert "seed 777" in browser.find_element(By.ID, "result").text
            assert browser.find_element(By.ID, "job").get_attribute("data-status") == "done"

            # 3. Its run page replays it: a new run, the same seed.
            browser.find_element(By.CSS_SELECTOR, "#result a.open-run").click()
            wait.until(seen.presence_of_element_located((By.ID, "replay")))
            first = browser.current_url
            assert "seed 777" in browser.find_element(By.TAG_NAME, "main").text
            screenshot(browser, tmp_path, "run-page.png")
            browser.find_element(By.ID, "replay").click()
            wait.until(lambda d: d.current_url != first and "/runs/call:" in d.current_url)
            wait.until(seen.presence_of_element_located((By.CSS_SELECTOR, ".pictures img")))
            assert "seed 777" in browser.find_element(By.TAG_NAME, "main").text
            runs = httpx.get(f"{url}/api/runs", params={"q": "fog"}).json()
            assert runs["total"] == 2 and {r["seed"] for r in runs["runs"]} == {777}
    finally:
        server.close()
