"""Saves a screenshot of autodeployd's web console: console_shot.py URL PNG PROFILE_DIR.

examples/demo/demo.sh runs it at the end of a scripted run when DEMO_CONSOLE_SHOT names the
PNG (test_demo.py does: build/console-demo.png, the picture of the page after the demo).
PROFILE_DIR is an empty directory for Chromium's profile. Exits 0 when the file was written."""
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from browser import screenshot_console  # noqa: E402


def main(argv):
    if len(argv) != 3:
        print(__doc__.strip().splitlines()[0], file=sys.stderr)
        return 2
    url, png, profile = argv
    os.makedirs(os.path.dirname(os.path.abspath(png)), exist_ok=True)
    os.makedirs(profile, exist_ok=True)
    try:
        screenshot_console(url, png, profile)
    except Exception:
        # Why Chromium did not start or answer is in chromedriver's log, not in the exception.
        log = os.path.join(profile, "chromedriver.log")
        if os.path.exists(log):
            with open(log, errors="replace") as f:
                sys.stderr.write("chromedriver.log (last lines):\n" + "".join(f.readlines()[-25:]))
        raise
    print(f"console screenshot: {png}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
