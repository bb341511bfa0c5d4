"""Headless Chromium driven by Selenium, for the web console's tests (test_console.py) and the
demo's screenshot (examples/demo/democtl.py screenshot). Debian's chromium, chromium-driver and
python3-selenium (tests/deps.sh installs them); nothing is downloaded.

Chromium starts slowly on a loaded machine: a test module starts one and reuses it."""
import os

from selenium import webdriver
from selenium.webdriver.chrome.options import Options
from selenium.common.exceptions import NoSuchElementException, StaleElementReferenceException
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By
from selenium.webdriver.support.ui import WebDriverWait

CHROMIUM = os.environ.get("CHROMIUM", "/usr/bin/chromium")
CHROMEDRIVER = os.environ.get("CHROMEDRIVER", "/usr/bin/chromedriver")


def start_chromium(profile_dir, width=1400, height=1000):
    """A headless Chromium with its own profile in profile_dir (an empty directory), the
    browser console's messages kept (console_errors reads them)."""
    opts = Options()
    opts.binary_location = CHROMIUM
    for arg in ("--headless=new", "--disable-gpu", "--disable-dev-shm-usage", "--no-first-run",
                "--no-default-browser-check", "--disable-extensions", "--disable-sync",
                "--disable-background-networking", "--disable-component-update",
                "--disable-features=Translate,MediaRouter,OptimizationHints",
                "--user-data-dir=" + str(profile_dir), f"--window-size={width},{height}"):
        opts.add_argument(arg)
    if os.geteuid() == 0:
        opts.add_argument("--no-sandbox")  # Chromium refuses to run as root with its sandbox
    opts.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    # Chromium puts its singleton socket under TMPDIR; a socket path longer than 107 bytes (a
    # pytest-xdist worker's temporary directory inside the demo's) makes it exit at once.
    env = dict(os.environ)
    if len(env.get("TMPDIR", "")) > 40:
        env["TMPDIR"] = "/tmp"
    service = Service(CHROMEDRIVER, log_path=os.path.join(str(profile_dir), "chromedriver.log"),
                      env=env)
    drv = webdriver.Chrome(service=service, options=opts)
    drv.set_page_load_timeout(30)
    drv.set_script_timeout(30)
    return drv


def console_errors(drv, ignore=()):
    """The browser console's errors since the last call (which also clears them), leaving out
    those whose message contains one of the strings in ignore."""
    return [e for e in drv.get_log("browser")
            if e.get("level") == "SEVERE" and not any(s in e.get("message", "") for s in ignore)]


def wait_dom(drv, pred, timeout=20, what="the page"):
    """Waits until pred(drv) is true (polling the DOM; no sleeps), failing with what. An
    element that went away or was replaced while pred looked at it means "not yet"."""
    return WebDriverWait(drv, timeout, poll_frequency=0.1,
                         ignored_exceptions=(NoSuchElementException, StaleElementReferenceException)).until(
        lambda d: pred(d), message=f"timed out after {timeout}s waiting for {what}")


def save_full_page(drv, path):
    """Resizes the window to the whole page and saves a PNG screenshot at path."""
    height = drv.execute_script("return document.documentElement.scrollHeight")
    width = drv.get_window_size()["width"]
    drv.set_window_size(width, min(max(int(height) + 120, 600), 4000))
    drv.save_screenshot(path)


def screenshot_console(url, path, profile_dir, timeout=30):
    """Opens the console at url, waits until it has shown the daemon's state, and saves a
    screenshot of the whole page (the demo's picture)."""
    drv = start_chromium(profile_dir)
    try:
        drv.get(url)
        wait_dom(drv, lambda d: d.find_element(By.ID, "state-deployer").text in ("running", "paused")
                 and d.find_elements(By.CSS_SELECTOR, "#apps tbody tr[data-app]"),
                 timeout=timeout, what="the console's state and apps")
        save_full_page(drv, path)
    finally:
        drv.quit()
