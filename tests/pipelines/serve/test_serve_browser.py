"""The live page in a real browser: Debian's headless Chromium through chromedriver, driven with Selenium."""
from __future__ import annotations

import os
import shutil
import time

import pytest
from serve_support import require_serve_extra, serve

require_serve_extra()
pytest.importorskip("selenium", reason="the browser test needs selenium (framegraph[dev])")

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
CHROMEDRIVER = shutil.which("chromedriver") or "/usr/bin/chromedriver"
if not (os.path.exists(CHROMIUM) and os.path.exists(CHROMEDRIVER)):
    pytest.skip("needs Debian's chromium and chromium-driver (apt-get install chromium chromium-driver)",
                allow_module_level=True)

pytestmark = pytest.mark.slow
TOKEN = "browser-test-token"

# Draw the MJPEG <img> into a canvas and return its mean grey level (the page's own origin, so readable).
MEAN_LEVEL = """
const img = document.getElementById(arguments[0]);
if (!img || !img.complete || !img.naturalWidth) return null;
const canvas = document.createElement('canvas');
canvas.width = img.naturalWidth; canvas.height = img.naturalHeight;
const ctx = canvas.getContext('2d');
ctx.drawImage(img, 0, 0);
const data = ctx.getImageData(0, 0, canvas.width, canvas.height).data;
let sum = 0;
for (let i = 0; i < data.length; i += 4) sum += data[i];
return [img.naturalWidth, img.naturalHeight, sum / (data.length / 4)];
"""


@pytest.fixture(scope="module")
def browser():
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for flag in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--disable-gpu",
                 "--window-size=1280,900", "--no-first-run", "--disable-extensions"):
        options.add_argument(flag)
    # A driver path given: Selenium Manager downloads nothing.
    driver = webdriver.Chrome(service=Service(executable_path=CHROMEDRIVER), options=options)
    driver.set_page_load_timeout(20)
    yield driver
    driver.quit()


@pytest.fixture(scope="module")
def secured(running_graph):
    server = serve(running_graph, token=TOKEN)
    yield server
    server.stop()


def wait_for(condition, timeout: float = 10.0, what: str = "condition"):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(0.1)
    raise AssertionError(f"timed out after {timeout} s waiting for {what}")


def node_cell(browser, node: str, column: int) -> str:
    return browser.execute_script(
        "const row = document.querySelector(`#stats tr[data-node='${arguments[0]}']`);"
        "return row ? row.children[arguments[1]].textContent : null;", node, column)


def check_live_page(browser, url: str) -> None:
    browser.get(url)
    # The graph drawn by dagre: a box per node and an edge between them.
    wait_for(lambda: browser.execute_script("return document.querySelectorAll('#graph g.node').length") == 2,
             what="the graph's two nodes drawn")
    assert browser.execute_script("return document.querySelectorAll('#graph g.edge path').length") == 1
    names = browser.execute_script("return [...document.querySelectorAll('#graph g.node')].map(g => g.dataset.node)")
    assert sorted(names) == ["show", "source"]
    # The figures arrive over the WebSocket and keep updating.
    wait_for(lambda: int(browser.execute_script("return document.body.dataset.updates")) >= 1,
             what="the first figures")
    first_out = int(node_cell(browser, "source", 4))
    wait_for(lambda: int(browser.execute_script("return document.body.dataset.updates")) >= 3,
             what="three updates of the figures")
    assert int(node_cell(browser, "source", 4)) > first_out  # frames counted live
    assert node_cell(browser, "source", 2) == "running"
    assert "fps" in browser.execute_script("return document.querySelector('#graph g.node .fig').textContent")
    # The video: the MJPEG image decodes at the clip's size and its pixels change.
    first = wait_for(lambda: browser.execute_script(MEAN_LEVEL, "video-shown_video"), what="a video frame")
    assert first[:2] == [64, 48]
    wait_for(lambda: browser.execute_script(MEAN_LEVEL, "video-shown_video")[2] != first[2],
             what="the video's pixels to change")
    assert browser.execute_script("return document.getElementById('conn').textContent") == "live"


def test_the_page_shows_video_graph_and_live_figures(live, browser):
    check_live_page(browser, live.url)


def test_the_page_works_with_the_right_token(secured, browser):
    check_live_page(browser, secured.url + f"?token={TOKEN}")


def test_a_wrong_or_missing_token_is_refused(secured, browser):
    for url in (secured.url + "?token=not-the-token", secured.url):
        browser.get(url)
        assert "401" in browser.find_element("tag name", "h1").text
        assert browser.execute_script("return document.getElementById('graph')") is None
