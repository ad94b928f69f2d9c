"""The HTML report (``-o report.html``) in a real headless browser: offline, interactive, no errors.

Debian's ``chromium`` is driven by ``chromedriver`` through Selenium (``.ci/browser-deps``
installs both in CI). Without a browser (or selenium) the browser tests skip with a one-line
reason; with ``GRAPHPROBE_REQUIRE_BROWSER=1`` (set by ``.ci/run``) they fail instead, so CI can't
pass them by skipping: the page's script is only tested here.
"""
from __future__ import annotations

import json
import os
import re
import shutil
import time
from pathlib import Path
from typing import Any, Iterator

import pytest

from graphprobe.cli import FORMATS, main
from graphprobe.render.html import _json_for_script, render_html

__all__: list[str] = []

SCREENSHOT_COPY = "/tmp/html_report.png"
_BROWSERS = ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable", "chrome")
_DRIVERS = ("chromedriver", "/usr/lib/chromium/chromedriver", "/usr/bin/chromedriver")
_FLAGS = ("--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
          "--disable-background-networking", "--disable-component-update", "--disable-sync",
          "--disable-dev-shm-usage", "--hide-scrollbars", "--window-size=1440,900")
_INSTALL = ("install them with `bash .ci/browser-deps` (Debian: apt-get install -y chromium "
            "chromium-driver) and `pip install -e '.[browser]'` (selenium)")

# Records errors from the first line of the page on, in case the browser log misses one.
_ERROR_TRAP = """
window.__gpErrors = [];
window.addEventListener('error', function (e) { window.__gpErrors.push('error: ' + e.message); });
window.addEventListener('unhandledrejection', function (e) {
  window.__gpErrors.push('rejection: ' + e.reason); });
document.addEventListener('securitypolicyviolation', function (e) {
  window.__gpErrors.push('csp: ' + e.blockedURI + ' ' + e.violatedDirective); });
(function () { var orig = console.error;
  console.error = function () { window.__gpErrors.push('console.error: ' +
    Array.prototype.join.call(arguments, ' ')); return orig.apply(console, arguments); }; })();
"""


def _missing(why: str) -> None:
    """Skip (a laptop without chromium), or fail where the browser is required (CI)."""
    if os.environ.get("GRAPHPROBE_REQUIRE_BROWSER") == "1":
        pytest.fail(why, pytrace=False)
    pytest.skip(why)


def _which(names: tuple[str, ...]) -> str | None:
    for n in names:
        p = shutil.which(n) if "/" not in n else (n if os.access(n, os.X_OK) else None)
        if p:
            return p
    return None


@pytest.fixture(scope="module")
def html_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """samples/case4_numpy.py rendered with the real command line to report.html."""
    root = Path(__file__).resolve().parent.parent
    out = tmp_path_factory.mktemp("html") / "report.html"
    code = main(["render", str(root / "samples" / "case4_numpy.py"), "-o", str(out), "-q"])
    assert code == 0 and out.is_file()
    return out


@pytest.fixture(scope="module")
def browser(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    chrome, driver_path = _which(_BROWSERS), _which(_DRIVERS)
    if chrome is None or driver_path is None:
        _missing(f"headless browser test: chromium={chrome!r} chromedriver={driver_path!r}; " + _INSTALL)
    try:
        from selenium import webdriver
        from selenium.webdriver.chrome.service import Service
    except ImportError:
        _missing("headless browser test: the selenium package is missing; " + _INSTALL)
    os.environ.setdefault("SE_OFFLINE", "true")  # Selenium Manager must not download anything
    profile = tmp_path_factory.mktemp("chrome-profile")
    opts = webdriver.ChromeOptions()
    opts.binary_location = chrome
    for flag in _FLAGS:
        opts.add_argument(flag)
    opts.add_argument(f"--user-data-dir={profile}")
    opts.set_capability("goog:loggingPrefs", {"browser": "ALL", "performance": "ALL"})
    drv = webdriver.Chrome(options=opts, service=Service(executable_path=driver_path))
    drv.set_page_load_timeout(60)
    try:
        yield drv
    finally:
        drv.quit()


def _network_events(drv: Any) -> list[dict[str, Any]]:
    return [json.loads(e["message"])["message"] for e in drv.get_log("performance")]


def _wait(drv: Any, script: str, timeout: float = 5.0) -> Any:
    end = time.monotonic() + timeout
    while True:
        value = drv.execute_script(script)
        if value or time.monotonic() > end:
            return value
        time.sleep(0.05)


def _settle(drv: Any) -> None:
    _wait(drv, "return !window.graphprobe.animating()")


# -- without a browser ----------------------------------------------------------------------------
def test_html_is_a_format_and_loads_nothing(html_file: Path) -> None:
    assert FORMATS[".html"] == "html"
    page = html_file.read_text("utf-8")
    assert page.startswith("<!DOCTYPE html>")
    # No URL at all: no CDN, no fonts, no DTD, not even a namespace string.
    assert not re.search(r"https?:|//[a-z0-9]|\bsrc=|@import|url\(", page, re.I)
    assert "Content-Security-Policy" in page and "default-src 'none'" in page
    assert page.count("<svg") == 1 and 'id="cut0"' in page and 'id="n0"' in page
    m = re.search(r'<script type="application/json" id="gp-data">(.*?)</script>', page, re.S)
    assert m is not None
    data = json.loads(m.group(1))
    assert data["schema"] == 1 and data["cuts"][0]["kind"] == "numpy"


def test_json_in_script_cannot_close_it() -> None:
    text = _json_for_script({"name": "</script><script>alert(1)</script><!-- & -->"})
    assert "</" not in text and "<!--" not in text and "<" not in text
    assert json.loads(text) == {"name": "</script><script>alert(1)</script><!-- & -->"}


def test_to_html_writes_the_same_page(tmp_path: Path, html_file: Path) -> None:
    import graphprobe
    import torch

    w = torch.nn.Linear(2, 2)
    loss = w(torch.ones(1, 2)).sum()
    report = graphprobe.probe(loss)
    out = tmp_path / "r.html"
    page = report.to_html(str(out))
    assert out.read_text("utf-8") == page == render_html(report)
    assert "no findings" in page


# -- in the browser -------------------------------------------------------------------------------
@pytest.mark.slow  # a real Chromium: CI runs it (-m slow, GRAPHPROBE_REQUIRE_BROWSER=1)
def test_report_in_headless_browser(browser: Any, html_file: Path, tmp_path: Path) -> None:
    from selenium.webdriver.common.action_chains import ActionChains
    from selenium.webdriver.common.actions.wheel_input import ScrollOrigin
    from selenium.webdriver.common.by import By
    from selenium.webdriver.common.keys import Keys

    drv = browser
    drv.get("about:blank")
    drv.execute_cdp_cmd("Page.addScriptToEvaluateOnNewDocument", {"source": _ERROR_TRAP})
    _network_events(drv)  # drop what the browser did before our page
    drv.get_log("browser")
    url = html_file.as_uri()
    drv.get(url)
    assert _wait(drv, "return !!(window.graphprobe && document.readyState === 'complete')")

    # The graph and the findings are there.
    assert drv.find_element(By.CSS_SELECTOR, "#gp-canvas svg g.node")
    verdict = drv.find_element(By.ID, "gp-verdict").text
    assert "numpy cut" in verdict and "gp-verdict-error" in drv.find_element(
        By.ID, "gp-verdict").get_attribute("class")
    cut_item = drv.find_element(By.CSS_SELECTOR, '.gp-finding[data-kind="cut"]')
    assert "ERROR" in cut_item.text.upper() and "case4_numpy.py:26" in cut_item.text
    assert "from_numpy" in cut_item.text and "FIX" in cut_item.text.upper()

    # Clicking the cut finding highlights the cut edge.
    cut_edge = drv.find_element(By.ID, "cut0")
    assert "gp-highlight" not in cut_edge.get_attribute("class")
    cut_item.click()
    assert "gp-highlight" in cut_edge.get_attribute("class").split()
    assert "gp-active" in cut_item.get_attribute("class").split()
    assert "detach → numpy → × 0.5 → from_numpy" in drv.find_element(By.ID, "gp-details").text
    _settle(drv)
    assert _inside(drv, "#gp-svg g.edge.cut0")  # the view is fitted to the cut
    drv.find_element(By.ID, "gp-fit").click()  # the whole graph again, to click around in it
    _settle(drv)

    # Clicking a node shows its details: net2's AddmmBackward0, where the cut re-enters.
    data = drv.execute_script("return window.graphprobe.data")
    target = next(n for n in data["nodes"] if n["op"] == "AddmmBackward0" and n["module"] == "net2")
    drv.find_element(By.ID, f"n{target['id']}").click()
    text = drv.find_element(By.ID, "gp-details").text
    assert "AddmmBackward0" in text and "net2" in text and "loss2" in text, text
    assert "cut enters here" in text
    assert "gp-selected" in drv.find_element(By.ID, f"n{target['id']}").get_attribute("class")
    assert "gp-highlight" in cut_edge.get_attribute("class").split()  # the finding stays marked
    param = next(p for p in data["params"] if p["name"] == "net1.weight")
    drv.find_element(By.ID, f"n{param['node']}").click()
    text = drv.find_element(By.ID, "gp-details").text
    assert "net1.weight" in text and "3 × 3" in text and "opt1" in text and "loss1" in text

    # The re-entry leaf's finding marks its node; Escape clears every mark.
    leaf = drv.find_element(By.CSS_SELECTOR, '.gp-finding[data-kind="detached"]')
    leaf.click()
    leaf_node = drv.find_element(By.ID, f"n{data['detached'][0]['node']}")
    assert "gp-highlight" in leaf_node.get_attribute("class").split()
    assert "gp-highlight" not in cut_edge.get_attribute("class").split()
    assert "tmp" in drv.find_element(By.ID, "gp-details").text
    _settle(drv)
    drv.find_element(By.TAG_NAME, "body").send_keys(Keys.ESCAPE)
    assert not drv.find_elements(By.CSS_SELECTOR, "#gp-svg .gp-highlight, #gp-svg .gp-selected")

    # Zoom with the buttons and the wheel, pan with a drag, fit again.
    view = lambda: drv.execute_script("return window.graphprobe.viewBox()")  # noqa: E731
    drv.find_element(By.ID, "gp-fit").click()  # the leaf's finding zoomed to it
    _settle(drv)
    home = view()
    drv.find_element(By.ID, "gp-zoom-in").click()
    assert view()[2] < home[2] * 0.9
    canvas = drv.find_element(By.ID, "gp-canvas")
    before = view()
    ActionChains(drv).scroll_from_origin(ScrollOrigin.from_element(canvas), 0, 300).perform()
    assert _wait(drv, f"return window.graphprobe.viewBox()[2] > {before[2] * 1.05}")
    before = view()
    legend = drv.find_element(By.CSS_SELECTOR, "#gp-canvas g.cluster")  # a spot with no node
    ActionChains(drv).move_to_element(legend).click_and_hold().move_by_offset(80, 40) \
        .release().perform()
    after = view()
    assert after[0] < before[0] - 1 and after[1] < before[1] - 1 and after[2] == before[2]
    drv.find_element(By.ID, "gp-fit").click()
    _settle(drv)
    assert all(abs(a - b) < 0.5 for a, b in zip(view(), home))

    # Back to the state worth a picture: the cut highlighted, the re-entry node selected.
    cut_item.click()
    _settle(drv)
    drv.find_element(By.ID, "gp-fit").click()
    _settle(drv)
    drv.find_element(By.ID, f"n{target['id']}").click()
    drv.execute_script("document.getElementById('gp-side-scroll').scrollTop = 0")
    shot = tmp_path / "html_report.png"
    assert drv.save_screenshot(str(shot)) and shot.stat().st_size > 10_000
    try:
        shutil.copyfile(shot, SCREENSHOT_COPY)
    except OSError:
        pass

    # Nothing but the file itself was loaded, nothing failed, no script error.
    events = _network_events(drv)
    sent = [(e["params"]["requestId"], e["params"]["request"]["url"]) for e in events
            if e["method"] == "Network.requestWillBeSent"]
    urls = [u for _, u in sent]
    assert url in urls, urls
    sent = sent[urls.index(url):]  # the browser's own start page may still be logged before it
    foreign = [u for _, u in sent if u != url and not u.startswith("data:")]
    assert not foreign, f"the page loaded {foreign}"
    ours = {rid for rid, _ in sent}
    failed = [e["params"] for e in events
              if e["method"] == "Network.loadingFailed" and e["params"]["requestId"] in ours]
    assert not failed, failed
    console = [e for e in drv.get_log("browser") if e["level"] == "SEVERE" or (
        e["level"] == "WARNING" and e.get("source") in ("javascript", "network", "security"))]
    assert not console, console
    assert drv.execute_script("return window.__gpErrors") == []


# -- an e2e-sized graph: folded view, lazily loaded detail ------------------------------------------
@pytest.fixture(scope="module")
def big_html(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """tests/programs/depth_detector.py with 80 blocks (about 1,400 nodes), rendered to HTML."""
    root = Path(__file__).resolve().parent.parent
    out = tmp_path_factory.mktemp("html-big") / "depth.html"
    code = main(["render", str(root / "tests" / "programs" / "depth_detector.py"), "-o", str(out),
                 "-q", "--", "80"])
    assert code == 0 and out.is_file()
    return out


@pytest.mark.slow  # lays out the e2e-sized graph (3 s)
def test_big_page_is_small_and_its_ids_are_drawn(big_html: Path) -> None:
    page = big_html.read_text("utf-8")
    assert len(page.encode("utf-8")) < 2_000_000, len(page)
    data = json.loads(re.search(r'<script type="application/json" id="gp-data">(.*?)</script>',
                                page, re.S).group(1))
    detail = json.loads(re.search(r'<script type="application/json" id="gp-detail">(.*?)</script>',
                                  page, re.S).group(1))
    # The JSON is the drawn view's: every node it names is in the SVG, and no more.
    drawn = set(re.findall(r'<g id="n(\d+)" class="node"', page))
    assert {str(n["id"]) for n in data["nodes"]} == drawn
    for p in data["params"]:
        assert str(p["node"]) in drawn
    assert 1300 < sum(g["count"] for g in detail["groups"].values()) + len(drawn) - len(detail["groups"])
    assert any(g["svg"] for g in detail["groups"].values())


def _inside(drv: Any, css: str) -> bool:
    return bool(drv.execute_script("""
        var c = document.getElementById('gp-canvas').getBoundingClientRect();
        var els = document.querySelectorAll(arguments[0]);
        if (!els.length) { return false; }
        return Array.prototype.every.call(els, function (el) {
          var b = el.getBoundingClientRect();
          return b.width > 0 && b.left >= c.left - 1 && b.top >= c.top - 1 &&
                 b.right <= c.right + 1 && b.bottom <= c.bottom + 1;
        });""", css))


@pytest.mark.slow  # a real Chromium on the e2e-sized page: CI runs it
def test_big_page_in_headless_browser(browser: Any, big_html: Path, tmp_path: Path) -> None:
    from selenium.webdriver.common.by import By
    from selenium.webdriver.common.keys import Keys

    drv = browser
    drv.get("about:blank")
    drv.execute_cdp_cmd("Page.addScriptToEvaluateOnNewDocument", {"source": _ERROR_TRAP})
    drv.get(big_html.as_uri())
    assert _wait(drv, "return !!(window.graphprobe && document.readyState === 'complete')")
    data = drv.execute_script("return window.graphprobe.data")

    # Clicking the error finding fits the cut into the view, big enough to read.
    cut_item = drv.find_element(By.CSS_SELECTOR, '.gp-finding[data-kind="cut"][data-severity="error"]')
    cut_item.click()
    _settle(drv)
    cut = data["cuts"][int(cut_item.get_attribute("data-cut"))]
    assert _inside(drv, f"#gp-svg g.edge.cut{cut_item.get_attribute('data-cut')}")
    width = drv.execute_script(f"return document.querySelector('#gp-svg g.edge.cut"
                               f"{cut_item.get_attribute('data-cut')}').getBoundingClientRect().width")
    assert width > 60, width
    assert "depth_detector.py" in drv.find_element(By.ID, "gp-details").text
    # The cut's source op: its output shape and the forward line that made it.
    drv.find_element(By.ID, f"n{cut['from']['node']}").click()
    text = drv.find_element(By.ID, "gp-details").text
    assert "1 × 1 × 8 × 8" in text and "depth_detector.py:" in text, text
    shot = tmp_path / "big_cut.png"
    drv.save_screenshot(str(shot))
    shutil.copyfile(shot, "/tmp/html_big_cut.png")

    # Every finding that names a node highlights that very node (ids are the drawn ids).
    for li in drv.find_elements(By.CSS_SELECTOR, ".gp-finding"):
        ids = [int(x) for x in (li.get_attribute("data-nodes") or "").split() if x]
        if li.get_attribute("data-kind") == "cut" or not ids:
            continue
        drv.execute_script("arguments[0].scrollIntoView({block: 'nearest'})", li)
        li.click()
        marked = drv.execute_script(
            "return Array.prototype.map.call(document.querySelectorAll('#gp-svg g.node.gp-highlight'),"
            " function (e) { return e.id; })")
        assert f"n{ids[0]}" in marked, (li.text, marked)

    # The search finds the detector (a module folded into groups) and fits it into view.
    box = drv.find_element(By.ID, "gp-search")
    box.clear()
    box.send_keys("detector", Keys.ENTER)
    _settle(drv)
    found = drv.execute_script("return Array.prototype.map.call("
                               "document.querySelectorAll('#gp-svg g.node.gp-found'), function (e) { return e.id; })")
    assert found, "the search for 'detector' found nothing"
    by_id = {f"n{n['id']}": n for n in data["nodes"]}
    assert all("detector" in " ".join(str(by_id[f].get(k) or "") for k in ("label", "name", "module"))
               for f in found)
    assert "found" in drv.find_element(By.ID, "gp-search-count").text
    assert _inside(drv, "#gp-svg g.node.gp-found")

    # A folded module opens in place and shows its ops; closing folds it again.
    detail = drv.execute_script("return window.graphprobe.detail()")
    gid = next(int(k) for k, g in detail["groups"].items() if g["svg"] and "detector.layers" in g["name"])
    drv.find_element(By.ID, f"n{gid}").click()
    assert "FOLDED" in drv.find_element(By.ID, "gp-details").text.upper()
    drv.find_element(By.ID, "gp-open").click()
    _settle(drv)
    inner = drv.find_elements(By.CSS_SELECTOR, f"#gp-sub-{gid} g.node")
    assert len(inner) >= 3
    texts = " ".join(e.text for e in inner)
    assert "AddmmBackward0" in texts or "ReluBackward0" in texts, texts
    assert _inside(drv, f"#gp-sub-{gid}")
    inner[0].click()
    assert "inside" in drv.find_element(By.ID, "gp-details").text
    shot = tmp_path / "big_open.png"
    drv.save_screenshot(str(shot))
    shutil.copyfile(shot, "/tmp/html_big_open.png")
    drv.find_element(By.CSS_SELECTOR, f"#gp-sub-{gid} .gp-sub-close").click()
    assert not drv.find_elements(By.ID, f"gp-sub-{gid}")
    assert drv.execute_script("return window.__gpErrors") == []
