"""The packer's screen in real headless chromium (Debian's, through its chromedriver), driven by
a simulated packing session: the checklist fills in, a short carton shows the red screen naming
the missing item, a reviewer releases it (its own packer cannot), PASS is green, Chinese renders.

Screenshots of the verdict screens are written to docs/screenshots/ when
PACKSTATION_SCREENSHOTS=1 (they are committed; CI does not rewrite them).
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from selenium import webdriver
from selenium.common.exceptions import StaleElementReferenceException
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By
from selenium.webdriver.remote.webdriver import WebDriver
from selenium.webdriver.support.ui import WebDriverWait

from simulators.broker import MosquittoBroker
from simulators.rig import EXAMPLE_CATALOG, PAPERWORK_G
from station.session import SessionState

from .conftest import (
    PACKER,
    REVIEWER,
    REVIEWER_PIN,
    SHORT_ORDER,
    RunningStation,
    run_station,
    with_cookbook_picture,
)

pytestmark = pytest.mark.browser
SCREENSHOTS = Path(__file__).resolve().parents[2] / "docs" / "screenshots"
WAIT_S = 10


@pytest.fixture(scope="module")
def browser() -> Iterator[WebDriver]:
    chromium = shutil.which("chromium")
    driver_path = shutil.which("chromedriver")
    if not chromium or not driver_path:
        pytest.fail(
            "chromium and chromedriver are needed: apt-get install chromium chromium-driver"
        )
    profile = tempfile.mkdtemp(prefix="packstation-chromium-")
    options = webdriver.ChromeOptions()
    options.binary_location = chromium
    # As root, offline and quiet: no sandbox, and none of chromium's own network chatter.
    for flag in (
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-quic",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--window-size=1280,800",
        f"--user-data-dir={profile}",
    ):
        options.add_argument(flag)
    driver = webdriver.Chrome(options=options, service=Service(executable_path=driver_path))
    driver.set_page_load_timeout(WAIT_S)
    # The station's touch screen, whatever the headless window's own decorations take.
    metrics = {"width": 1280, "height": 800, "deviceScaleFactor": 1, "mobile": False}
    driver.execute_cdp_cmd("Emulation.setDeviceMetricsOverride", metrics)
    yield driver
    driver.quit()
    shutil.rmtree(profile, ignore_errors=True)


@pytest.fixture
def station(tmp_path: Path, broker: MosquittoBroker) -> Iterator[RunningStation]:
    """A station whose cookbook has a picture in pictures_dir (served by the daemon)."""
    workdir = tmp_path / "station"
    yield from run_station(workdir, broker, **with_cookbook_picture(workdir))


def open_screen(browser: WebDriver, station: RunningStation, lang: str = "en") -> None:
    browser.get(f"{station.base_url}/screen/?lang={lang}")
    browser.execute_script("localStorage.clear()")
    wait_text(browser, "station-id", "pack-01")


def wait_text(browser: WebDriver, element_id: str, text: str) -> None:
    WebDriverWait(browser, WAIT_S, ignored_exceptions=[StaleElementReferenceException]).until(
        lambda b: text in b.find_element(By.ID, element_id).text,
        f"#{element_id} never showed {text!r}",
    )


def text_of(browser: WebDriver, selector: str) -> str:
    """An element's rendered text, read in one script call: the screen rebuilds the checklist and
    device rows on every status update, so an element found first can be stale by the time its
    text is asked for (CI saw StaleElementReferenceException)."""
    # Hidden: "" as Selenium's .text gives (innerText would give the raw text).
    text = browser.execute_script(
        "const el = document.querySelector(arguments[0]);"
        "return el ? (el.checkVisibility() ? el.innerText : '') : null",
        selector,
    )
    assert text is not None, f"{selector} is not on the screen"
    return str(text).strip()


def class_of(browser: WebDriver, selector: str) -> str:
    """An element's class attribute, read in one script call (see text_of)."""
    classes = browser.execute_script(
        "return document.querySelector(arguments[0])?.className ?? null", selector
    )
    assert classes is not None, f"{selector} is not on the screen"
    return str(classes)


def wait_outcome(browser: WebDriver, outcome: str | None) -> None:
    def shown(b: WebDriver) -> bool:
        verdict = b.find_element(By.ID, "verdict")
        if outcome is None:
            return not verdict.is_displayed()
        return verdict.is_displayed() and verdict.get_attribute("data-outcome") == outcome

    WebDriverWait(browser, WAIT_S).until(shown, f"the screen never showed {outcome}")


def screenshot(browser: WebDriver, name: str) -> None:
    if os.environ.get("PACKSTATION_SCREENSHOTS") == "1":
        SCREENSHOTS.mkdir(parents=True, exist_ok=True)
        browser.save_screenshot(str(SCREENSHOTS / name))


def release(browser: WebDriver, badge: str, pin: str) -> None:
    browser.find_element(By.ID, "override-open").click()
    browser.find_element(By.ID, "override-badge").send_keys(badge)
    browser.find_element(By.ID, "override-pin").send_keys(pin)
    browser.find_element(By.CSS_SELECTOR, '[data-reason="reissue_approved"]').click()
    browser.find_element(By.ID, "override-next").click()
    wait_text(browser, "override-confirm-text", "ORD-2001")
    browser.find_element(By.ID, "override-submit").click()


def test_short_carton_blocks_red_and_a_reviewer_releases_it(
    browser: WebDriver, station: RunningStation
) -> None:
    station.rig.write_manifest(SHORT_ORDER)
    open_screen(browser, station)
    station.rig.scan(f"BADGE-{PACKER}")
    wait_text(browser, "packer", PACKER)
    station.rig.scan("ORD-2001/C1")
    station.rig.scan("BOX-S")
    row = '#checklist tr[data-sku="BOOK-COOK"]'
    WebDriverWait(browser, WAIT_S).until(lambda b: b.find_elements(By.CSS_SELECTOR, row))
    wait_text(browser, "checklist", "The Weeknight Cookbook")
    wait_text(browser, "weight-expected", "Expected")
    station.rig.scan("4006381333931")  # the mug's barcode: its scan tick fills in
    tick = '#checklist tr[data-sku="MUG-BLUE"] td[data-channel="scan"].confirmed'
    WebDriverWait(browser, WAIT_S).until(lambda b: b.find_elements(By.CSS_SELECTOR, tick))

    def weighs(grams: float) -> bool:
        weight = station.call("GET", "/api/status")[1]["weight"]
        return weight["state"] == "settled" and (weight["grams"] or 0) > grams

    station.rig.place(station.rig.box_weight("BOX-S") + 6.0)
    station.wait_for(lambda: weighs(150))  # the box's step settles before the mug goes in
    station.rig.add_unit("MUG-BLUE")  # the cookbook stays on the shelf
    station.wait_for(lambda: weighs(400))
    # Before the close, the scale's steps tick the mug in live ("seen": units of those ordered).
    seen = '#checklist tr[data-sku="MUG-BLUE"] td[data-channel="insertion"].seen'
    WebDriverWait(browser, WAIT_S).until(lambda b: b.find_elements(By.CSS_SELECTOR, seen))
    assert text_of(browser, seen) == "1/1"
    book = '#checklist tr[data-sku="BOOK-COOK"] td[data-channel="insertion"]'
    assert "seen" not in class_of(browser, book)
    station.rig.close()
    wait_outcome(browser, "BLOCK")
    missing = browser.find_element(By.ID, "verdict-missing").text
    assert "The Weeknight Cookbook" in missing and "BOOK-COOK" in missing
    picture = '#verdict-missing li[data-sku="BOOK-COOK"] img'
    WebDriverWait(browser, WAIT_S).until(
        lambda b: b.execute_script(f"return document.querySelector('{picture}')?.naturalWidth"),
        "the cookbook's picture never loaded from the station",
    )
    weight_tick = '#checklist tr[data-sku="BOOK-COOK"] td[data-channel="weight"].missing'
    assert browser.find_elements(By.CSS_SELECTOR, weight_tick)
    screenshot(browser, "verdict-block.png")

    release(browser, PACKER, REVIEWER_PIN)  # the packer is a reviewer too, but not for this one
    wait_text(browser, "override-error", "packed this carton yourself")
    assert station.state() is SessionState.BLOCKED
    browser.find_element(By.ID, "override-cancel").click()

    release(browser, REVIEWER, REVIEWER_PIN)
    wait_text(browser, "verdict-detail", f"Released by reviewer {REVIEWER}")
    assert station.state() is SessionState.IDLE


def test_a_picture_the_station_cannot_reach_leaves_the_name_and_sku(
    browser: WebDriver, tmp_path: Path, broker: MosquittoBroker
) -> None:
    document = json.loads(EXAMPLE_CATALOG.read_text())
    for item in document["items"]:
        if item["sku"] == "BOOK-COOK":  # a closed port: refused at once, like a station offline
            item["image_url"] = "http://127.0.0.1:9/book-cook.jpg"
    catalog = tmp_path / "catalog.json"
    catalog.write_text(json.dumps(document))
    running = contextlib.contextmanager(run_station)
    with running(tmp_path / "station", broker, catalog_path=catalog) as station:
        station.rig.write_manifest(SHORT_ORDER)
        open_screen(browser, station)
        station.pack_short("ORD-2001", "BOOK-COOK")
        wait_outcome(browser, "BLOCK")
        row = '#verdict-missing li[data-sku="BOOK-COOK"]'
        WebDriverWait(browser, WAIT_S).until(
            lambda b: not b.find_elements(By.CSS_SELECTOR, row + " img"),
            "the unreachable picture was never dropped",
        )
        text = text_of(browser, row)
        assert "The Weeknight Cookbook" in text and "BOOK-COOK" in text


def test_rfid_ticks_its_column_and_marks_the_earring_left_beside_the_box(
    browser: WebDriver, tmp_path: Path, broker: MosquittoBroker
) -> None:
    running = contextlib.contextmanager(run_station)
    with running(tmp_path / "station", broker, rfid=True) as station:
        open_screen(browser, station)
        station.rig.pack(PACKER, "ORD-1004", "C1", "BOX-M", beside=("EAR-SILVER",))
        wait_outcome(browser, "BLOCK")
        head = browser.find_element(By.ID, "checklist-head").get_attribute("textContent")
        assert "RFID" in head, head
        cells = browser.execute_script(
            "return [...document.querySelectorAll('td[data-channel=\"rfid\"]')]"
            ".map(cell => [cell.parentElement.dataset.sku, cell.className])"
        )
        ticks = {(sku, classes) for sku, classes in cells}
        assert ("EAR-SILVER", "tick missing") in ticks, ticks


def test_shadow_mode_is_a_banner_its_verdict_a_note_and_a_silent_scale_shows_down(
    browser: WebDriver, tmp_path: Path, broker: MosquittoBroker
) -> None:
    running = contextlib.contextmanager(run_station)
    with running(tmp_path / "station", broker, mode="shadow") as station:
        station.rig.write_manifest(SHORT_ORDER)
        open_screen(browser, station)
        wait_text(browser, "shadow-banner", "SHADOW MODE")
        wait_text(browser, "devices", "scale: OK")
        station.rig.pack(PACKER, "ORD-2001", "C1", "BOX-S", leave_out=("BOOK-COOK",))
        wait_text(browser, "shadow-verdict", "ORD-2001 / C1: BLOCK (not enforced)")
        assert not browser.find_element(By.ID, "verdict").is_displayed()  # the packer goes on

        station.rig.scale.set_silent(True)
        WebDriverWait(browser, 20).until(
            lambda b: "scale: DOWN" in b.find_element(By.ID, "devices").text,
            "the silent scale never showed DOWN",
        )
        assert class_of(browser, '#devices li[data-device="scale"]') == "down"


def test_complete_carton_shows_green_pass(browser: WebDriver, station: RunningStation) -> None:
    open_screen(browser, station)
    station.rig.write_manifest(SHORT_ORDER)
    station.rig.pack(PACKER, "ORD-2001", "C1", "BOX-S")
    wait_outcome(browser, "PASS")
    wait_text(browser, "verdict-detail", "ORD-2001")
    screenshot(browser, "verdict-pass.png")


def test_review_is_amber_with_its_reason_in_chinese(
    browser: WebDriver, station: RunningStation
) -> None:
    open_screen(browser, station, lang="zh-CN")
    wait_text(browser, "instruction", "请扫描工牌开始")
    station.rig.pack(PACKER, "ORD-1003", "C1", "BOX-M")  # farm cheese: weight cannot vouch
    wait_outcome(browser, "REVIEW")
    assert browser.find_element(By.ID, "verdict-word").text == "待复核"
    assert "没有任何检测能确认 CHEESE-FARM" in browser.find_element(By.ID, "verdict-reasons").text
    assert browser.find_element(By.ID, "override-open").text == "复核放行"
    screenshot(browser, "verdict-review-zh.png")


def test_a_look_alike_no_sensor_tells_apart_is_marked_to_check(
    browser: WebDriver, station: RunningStation
) -> None:
    """Wool socks M and L weigh 62 and 66 g: the weight cannot tell them apart and they carry no
    tag, so the packer is told to check the size (lookalike_action = "warn", the default)."""
    open_screen(browser, station)
    station.rig.scan(f"BADGE-{PACKER}")
    station.rig.scan("ORD-1001/C1")
    station.rig.scan("BOX-S")
    socks = '#checklist tr[data-sku="SOCKS-WOOL-M"]'
    WebDriverWait(browser, WAIT_S).until(lambda b: b.find_elements(By.CSS_SELECTOR, socks))
    wait_text(browser, "message", "No sensor tells Wool Socks, pair, size M from its look-alikes")
    assert "check size and colour" in text_of(browser, socks)
    assert "check size" not in text_of(browser, '#checklist tr[data-sku="MUG-BLUE"]')


def test_a_must_scan_line_is_marked_and_a_degraded_mode_is_a_banner(
    browser: WebDriver, tmp_path: Path, broker: MosquittoBroker
) -> None:
    rule = '\n[[policy.sku_rules]]\nskus = ["HEADPHONES-*"]\nrequire = ["scan"]\n'
    running = contextlib.contextmanager(run_station)
    with running(tmp_path / "station", broker, extra=rule) as station:
        open_screen(browser, station)
        station.rig.scan(f"BADGE-{PACKER}")
        station.rig.scan("ORD-1002/C2")
        station.rig.scan("BOX-S")
        must_scan = '#checklist tr.must-scan[data-sku="{}"]'
        headphones = must_scan.format("HEADPHONES-X1")
        WebDriverWait(browser, WAIT_S).until(lambda b: b.find_elements(By.CSS_SELECTOR, headphones))
        assert "scan each unit" in text_of(browser, headphones)
        assert not browser.find_elements(By.CSS_SELECTOR, must_scan.format("CABLE-USBC-1M"))
        body = {
            "reviewer_badge": REVIEWER,
            "pin": REVIEWER_PIN,
            "fallback": "scan_for_weight",
            "reason_code": "scale_fault",
            "minutes": 15,
        }
        assert station.call("POST", "/api/screen/degraded", body)[0] == 200
        wait_text(browser, "degraded-banner", "DEGRADED MODE scan_for_weight")
        assert REVIEWER in browser.find_element(By.ID, "degraded-banner").text


def test_a_double_scan_asks_the_packer_to_recount_and_no_reviewer_can_release_it(
    browser: WebDriver, tmp_path: Path, broker: MosquittoBroker
) -> None:
    """The mug must be scanned and is scanned twice; the scale weighs the order right: the
    screen asks for a recount (no release button), and one scan of the mug then passes."""
    rule = '\n[[policy.sku_rules]]\nskus = ["MUG-*"]\nrequire = ["scan"]\n'
    running = contextlib.contextmanager(run_station)
    with running(tmp_path / "station", broker, extra=rule) as station:
        open_screen(browser, station)
        rig = station.rig
        mug = rig.catalog.items["MUG-BLUE"].barcodes[0].code
        rig.scan(f"BADGE-{PACKER}")
        rig.scan("ORD-1001/C1")
        rig.scan("BOX-S")
        wait_text(browser, "instruction", "Pack the items")
        rig.place(rig.box_weight("BOX-S") + PAPERWORK_G)
        for sku in rig.units_of(rig.manifest("ORD-1001", "C1")):
            if sku == "MUG-BLUE":
                rig.scan(mug)
                rig.scan(mug)
            rig.add_unit(sku)
            time.sleep(0.05)
        rig.close()
        wait_outcome(browser, "REVIEW")
        wait_text(browser, "verdict-todo", "Scan every unit named below again")
        assert "Scan every unit of MUG-BLUE" in browser.find_element(By.ID, "verdict-reasons").text
        assert not browser.find_element(By.ID, "override-open").is_displayed()
        scan_tick = '#checklist tr[data-sku="MUG-BLUE"] td[data-channel="scan"]'
        assert "extra" in class_of(browser, scan_tick)  # the verdict's count: two of one
        screenshot(browser, "verdict-recount.png")
        rig.scan(mug)
        # The recount's own count from its first scan, not the verdict's old one.
        confirmed = scan_tick + ".confirmed"
        WebDriverWait(browser, WAIT_S).until(lambda b: b.find_elements(By.CSS_SELECTOR, confirmed))
        assert text_of(browser, '#checklist tr[data-sku="MUG-BLUE"] td.scanned') == "1"
        rig.close()
        wait_outcome(browser, "PASS")


def test_the_camera_asks_for_a_second_look_at_an_item_set_down_over_another(
    browser: WebDriver, tmp_path: Path, broker: MosquittoBroker
) -> None:
    """A station with the simulated overhead camera: the socks lifted out again and set down
    on the mug hide it, and the camera panel asks the packer to lift them and set them down
    where they cover nothing; done, the request goes."""
    stations = run_station(tmp_path / "station", broker, camera=True, seed=8)
    station = next(stations)
    try:
        rig = station.rig
        [camera] = [c for c in station.daemon.channels if c.name == "vision"]

        def framed(n: int) -> None:
            deadline = time.monotonic() + 15
            while len(camera.camera.accumulator.observations) < n:
                assert time.monotonic() < deadline, f"fewer than {n} frames"
                time.sleep(0.05)

        open_screen(browser, station)
        rig.scan(f"BADGE-{PACKER}")
        rig.scan("ORD-1001/C1")
        time.sleep(0.3)  # the manifest fetch
        rig.scan("BOX-S")
        rig.place(rig.box_weight("BOX-S") + PAPERWORK_G)
        framed(1)
        for n, sku in enumerate(("MUG-BLUE", "SOCKS-WOOL-M", "SOCKS-WOOL-M"), start=2):
            rig.add_unit(sku)
            framed(n)
        assert browser.find_element(By.ID, "second-look").is_displayed() is False
        rig.lift("SOCKS-WOOL-M")
        time.sleep(1.0)  # the step down settles: an item taken out
        rig.set_down("SOCKS-WOOL-M", over="MUG-BLUE")
        grams = round(rig.unit_weight("SOCKS-WOOL-M"))
        wait_text(browser, "second-look", f"Lift the item you just put back ({grams} g)")
        screenshot(browser, "second-look.png")
        rig.lift("SOCKS-WOOL-M")
        time.sleep(1.0)
        rig.set_down("SOCKS-WOOL-M")
        WebDriverWait(browser, WAIT_S).until(
            lambda b: not b.find_element(By.ID, "second-look").is_displayed()
        )
    finally:
        next(stations, None)
