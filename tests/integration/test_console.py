"""The web console (GET /, /ui/*) in a real browser (headless Chromium, see browser.py) against
autodeployd and the Marathon emulator, and the HTTP rules around it: the JSON views it reads
(/v1/status, /v1/apps), --ui-token, the admin token for actions, no action from another site's
page, and every string from a push, a label or Marathon shown as text, never run.

One Chromium for the module (it starts slowly); each test starts its own daemon and emulator.
A screenshot of each page a test looked at is saved in the test's temporary directory."""
import http.server
import json
import os
import threading
import urllib.request

import pytest
from selenium.webdriver.common.by import By

from browser import console_errors, save_full_page, start_chromium, wait_dom
from conftest import ROOT, wait_for
from deploy_helpers import (app, app_state, autodeployd_requests, marathon, push,  # noqa: F401
                            records, start_daemon, wait_records)

IMG = "registry.example.com:5000/strava/foo-service:master-1"
UI_TOKEN = "console-ui-token-5f2a"
ADMIN = "console-admin-token-9c1e"
# What an app carries to have its deployments wait for an approval (the approvals half of
# issue #15); the approval test below uses it.
APPROVAL_LABELS = {"autodeploy.approve": "true"}
# A daemon without the approvals API (an older one) answers 404 and the page says so; the
# browser logs that 404 as an error, which the console-error checks then leave out.
APPROVALS_404 = "/v1/approvals - Failed to load resource: the server responded with a status of 404"

# Payloads that would run if the page put a string into HTML: each sets window.__xss.
XSS_PUSHER = "<script>window.__xss='pusher'</script><img src=x onerror=\"window.__xss='pusher'\">"
XSS_LABEL = "<img src=x onerror=window.__xss='label'> <script>window.__xss='label'</script>"
XSS_TASK = "<img src=x onerror=\"window.__xss='task'\"><script>window.__xss='task'</script> oom"


@pytest.fixture(scope="module")
def chromium(tmp_path_factory):
    drv = start_chromium(tmp_path_factory.mktemp("chromium"))
    yield drv
    drv.quit()


@pytest.fixture
def browser(chromium):
    """The module's Chromium on a blank page, its console emptied: nothing a page of an
    earlier test still logs (a poll refused, a daemon gone) counts against this test. Left on
    a blank page, so that no page polls a daemon the test stopped."""
    chromium.get("about:blank")
    console_errors(chromium)
    yield chromium
    # A later daemon may get the same port, so the same origin: it must not find our token.
    chromium.execute_script("try { sessionStorage.clear(); } catch (e) { }")
    chromium.get("about:blank")


def url(d, path="/"):
    return f"http://127.0.0.1:{d.port}{path}"


def approvals_missing(d, token=None):
    headers = {"Authorization": "Bearer " + token} if token else {}
    return d.request("GET", "/v1/approvals", headers=headers).status == 404


def no_console_errors(drv, d, token=None):
    ignore = (APPROVALS_404,) if approvals_missing(d, token) else ()
    errors = console_errors(drv, ignore)
    assert not errors, errors


# A table's rows as {"data": the row's data-* attributes, "text": its text}, read in one go
# by the page's own thread, so a refresh can never replace a row in the middle of a read.
ROWS_JS = """return Array.from(document.querySelectorAll('#' + arguments[0] + ' tbody tr')).map(
    function (r) { return {data: Object.assign({}, r.dataset), text: r.innerText}; });"""


def rows(drv, table):
    return drv.execute_script(ROWS_JS, table)


def row_texts(drv, table):
    return [r["text"] for r in rows(drv, table)]


def find_row(drv, table, key, value, state=None):
    for r in rows(drv, table):
        if r["data"].get(key) == value and (state is None or r["data"].get("state") == state):
            return r
    return None


def deployment_row(drv, app_id, state=None):
    return find_row(drv, "deployments", "app", app_id, state)


def shot(drv, tmp_path, name):
    save_full_page(drv, str(tmp_path / name))


def open_console(drv, d):
    drv.get(url(d))
    drv.execute_script("window.__loaded_once = 'yes';")  # gone if the page ever reloads
    wait_dom(drv, lambda x: x.find_element(By.ID, "state-deployer").text in ("running", "paused"),
             what="the deployer's state")


# ---------------------------------------------------------------- HTTP rules (no browser)

def test_console_files_are_served_with_strict_headers(daemon):
    d = daemon()
    page = d.request("GET", "/")
    assert page.status == 200 and page.headers["Content-Type"] == "text/html; charset=utf-8"
    csp = page.headers["Content-Security-Policy"]
    assert "script-src 'self'" in csp and "frame-ancestors 'none'" in csp and "default-src 'none'" in csp
    assert "unsafe-inline" not in csp and "unsafe-eval" not in csp
    assert page.headers["X-Content-Type-Options"] == "nosniff"
    assert page.headers["X-Frame-Options"] == "DENY"
    assert page.headers["Referrer-Policy"] == "no-referrer"
    html = page.body.decode()
    # No inline script or style, nothing from another origin.
    assert "<script src=\"/ui/console.js\"" in html and "<script>" not in html and "style=" not in html
    assert "http://" not in html and "https://" not in html
    types = {"/ui/console.js": "text/javascript; charset=utf-8", "/ui/console.css": "text/css; charset=utf-8",
             "/ui/favicon.svg": "image/svg+xml", "/ui/": "text/html; charset=utf-8"}
    for path, ctype in types.items():
        r = d.request("GET", path)
        assert r.status == 200 and r.headers["Content-Type"] == ctype, path
        with open(os.path.join(ROOT, "ui", "index.html" if path == "/ui/" else path[4:]), "rb") as f:
            assert r.body == f.read(), f"{path} is not the file in ui/"
    assert d.request("HEAD", "/ui/console.js").status == 200
    assert d.request("GET", "/ui/missing.js").status == 404
    assert d.request("GET", "/ui/../README.md").status == 404
    r = d.request("POST", "/", body=b"x")
    assert r.status == 405 and r.headers["Allow"] == "GET"


def test_status_and_apps_views(daemon, marathon):
    emu = marathon([app("/console/web", IMG, labels={"autodeploy.paused": "true", "autodeploy.digest": "sha256:1"}),
                    app("/console/bad", IMG, pattern="strava/*:x  strava/ok:*")])
    d = start_daemon(daemon, emu, "--admin-token", ADMIN)
    st = wait_for(lambda: (lambda j: j if j["event_stream"] == "attached" else None)(
        d.request("GET", "/v1/status").json()), what="the event stream attached")
    assert st["paused"] is False and st["queued"] == 0 and st["marathon"] == "reachable"
    assert st["admin_actions"] is True and st["read_token"] is False and st["version"]
    apps = {a["id"]: a for a in d.request("GET", "/v1/apps").json()["apps"]}
    web, bad = apps["/console/web"], apps["/console/bad"]
    assert web["image"] == IMG and web["patterns"] == ["strava/foo-service:master*"]
    assert web["paused"] is True and web["labels"] == {"autodeploy.paused": "true"}
    assert web["digest"] == "sha256:1" and web["last"] is None and web["label_error"] is None
    assert bad["patterns"] == ["strava/*:x", "strava/ok:*"] and "column 8: wildcard in the repository" in bad["label_error"]
    assert bad["last"] is None
    # The last outcome comes from the deployer's records.
    d.post_event(push(tag="master-2")[0])
    assert wait_records(d, "/console/web")[0]["state"] == "skipped"
    last = {a["id"]: a for a in d.request("GET", "/v1/apps").json()["apps"]}["/console/web"]["last"]
    assert last["state"] == "skipped" and "paused" in last["reason"] and last["at"].endswith("Z")
    assert last["image"].endswith("strava/foo-service:master-2")
    # Consoles and scripts asking in a loop cost Marathon one listing per 2 s at most.
    listings = len(autodeployd_requests(emu, "GET", "/v2/apps"))
    assert listings >= 2
    assert all(d.request("GET", "/v1/apps").status == 200 for _ in range(10))
    assert len(autodeployd_requests(emu, "GET", "/v2/apps")) <= listings + 1
    emu.stop()
    r = wait_for(lambda: (lambda r: r if r.status == 502 else None)(d.request("GET", "/v1/apps")),
                 what="/v1/apps failing once the shared listing is older than 2 s")
    assert r.json()["error"]


def test_ui_token_guards_the_views_and_actions_need_the_admin_token(daemon, marathon):
    emu = marathon([app("/console/web", IMG)])
    d = start_daemon(daemon, emu, "--ui-token", UI_TOKEN, "--admin-token", ADMIN)
    views = ["/v1/status", "/v1/pushes", "/v1/deployments", "/v1/apps", "/v1/plan?image=strava/foo-service:master-2"]
    for path in views:
        assert d.request("GET", path).status == 401, path
        assert d.request("GET", path, headers={"Authorization": "Bearer wrong"}).status == 401, path
        for tok in (UI_TOKEN, ADMIN):
            assert d.request("GET", path, headers={"Authorization": "Bearer " + tok}).status == 200, path
    for open_path in ("/", "/ui/console.js", "/healthz", "/metrics"):
        assert d.request("GET", open_path).status == 200, open_path
    # The UI token reads, it does not act.
    assert d.request("POST", "/v1/pause", headers={"Authorization": "Bearer " + UI_TOKEN}).status == 401
    assert d.request("POST", "/v1/pause").status == 401
    assert d.request("GET", "/v1/pause", headers={"Authorization": "Bearer " + ADMIN}).status == 405
    st = d.request("GET", "/v1/status", headers={"Authorization": "Bearer " + ADMIN}).json()
    assert st["paused"] is False and st["read_token"] is True
    # Neither token reaches the log.
    assert UI_TOKEN not in d.log_text() and ADMIN not in d.log_text()


def test_ui_token_from_a_file_and_a_reload(daemon, tmp_path):
    """--ui-token-file, and a SIGHUP that changes the token: the new one opens the views, the
    old one no longer does (no restart)."""
    import signal
    tok = tmp_path / "ui-token"
    tok.write_text("first-ui-token\n")
    conf = tmp_path / "autodeploy.json"
    conf.write_text(json.dumps({"ui-token-file": str(tok)}))
    d = daemon(args=["--config", str(conf)])

    def status(token):
        return d.request("GET", "/v1/status", headers={"Authorization": "Bearer " + token}).status
    assert status("first-ui-token") == 200 and status("second-ui-token") == 401
    assert d.request("GET", "/v1/pushes").status == 401
    tok.write_text("second-ui-token\n")
    d.proc.send_signal(signal.SIGHUP)
    wait_for(lambda: status("second-ui-token") == 200, what="the reloaded token")
    assert status("first-ui-token") == 401
    assert "first-ui-token" not in d.log_text() and "second-ui-token" not in d.log_text()


def test_actions_from_another_sites_page_are_refused(daemon):
    d = daemon(args=["--admin-token", ADMIN])
    auth = {"Authorization": "Bearer " + ADMIN}
    here = f"http://127.0.0.1:{d.port}"
    for hostile in ({"Origin": "http://evil.example"}, {"Origin": "null"},
                    {"Origin": f"http://127.0.0.1:{d.port + 1}"},
                    {"Sec-Fetch-Site": "cross-site", "Origin": here},
                    {"Sec-Fetch-Site": "same-site"}):
        r = d.request("POST", "/v1/pause", headers={**auth, **hostile})
        assert r.status == 403 and "cross-site" in r.json()["error"], hostile
        r = d.request("POST", "/v1/webhooks/registry", body=push()[0], headers={**hostile, "Content-Type": "application/json"})
        assert r.status == 403, hostile
    assert d.pushes() == []
    assert d.request("GET", "/readyz").json()["paused"] is False
    # The console's own page (same origin), and clients that are no browsers, may act.
    r = d.request("POST", "/v1/pause", headers={**auth, "Origin": here, "Sec-Fetch-Site": "same-origin"})
    assert r.status == 200 and r.json()["paused"] is True
    assert d.request("POST", "/v1/resume", headers=auth).json()["paused"] is False


# ---------------------------------------------------------------- in the browser

def test_page_shows_a_deployment_and_updates_without_reload(daemon, marathon, browser, tmp_path):
    emu = marathon([app("/console/web", IMG), app("/console/api", IMG, pattern="strava/api:*")])
    d = start_daemon(daemon, emu)
    d.post_event(push(tag="master-2", pusher="alice")[0])
    assert wait_records(d, "/console/web")[0]["state"] == "succeeded"

    open_console(browser, d)
    wait_dom(browser, lambda x: deployment_row(x, "/console/web", "succeeded"), what="the deployment")
    row = deployment_row(browser, "/console/web")["text"]
    assert "strava/foo-service:master-1 → registry.example.com:5000/strava/foo-service:master-2" in row
    assert "succeeded" in row
    dep_id = records(d, "/console/web")[0]["deployment_id"]
    assert dep_id in row
    wait_dom(browser, lambda x: any("alice" in t for t in row_texts(x, "pushes")), what="the push")
    wait_dom(browser, lambda x: any(t.startswith("/console/web") and "succeeded" in t
                                    for t in row_texts(x, "apps")), what="the apps")
    assert browser.find_element(By.ID, "state-marathon").text == "Marathon reachable"
    assert browser.find_element(By.ID, "state-queue").text == "queue 0"

    # A second push: the page follows it without being reloaded.
    emu.set_behaviour("/console/web", "hang", times=1)
    d.post_event(push(tag="master-3", pusher="bob")[0])
    wait_dom(browser, lambda x: deployment_row(x, "/console/web", "deploying"), what="the second deployment running")
    wait_dom(browser, lambda x: any("bob" in t and "master-3" in t for t in row_texts(x, "pushes")),
             what="the second push")
    emu.clear_behaviours("/console/web")
    running = records(d, "/console/web")[0]
    emu.finish_deployment(running["deployment_id"])
    wait_dom(browser, lambda x: "master-3" in (deployment_row(x, "/console/web", "succeeded") or {"text": ""})["text"],
             what="the second deployment succeeded")
    assert browser.execute_script("return window.__loaded_once") == "yes", "the page was reloaded"
    assert len([t for t in row_texts(browser, "deployments") if t.startswith("/console/web")]) == 2
    no_console_errors(browser, d)
    shot(browser, tmp_path, "console.png")


def test_page_without_marathon(daemon, browser):
    """A daemon that only records pushes (no --marathon-url): the page says so, shows the
    push, and asks nothing it cannot answer (no console error)."""
    d = daemon()
    d.post_event(push(tag="master-9", pusher="frank")[0])
    open_console(browser, d)
    wait_dom(browser, lambda x: any("frank" in t and "master-9" in t for t in row_texts(x, "pushes")), what="the push")
    assert browser.find_element(By.ID, "state-marathon").text == "Marathon not configured"
    wait_dom(browser, lambda x: "No Marathon configured" in x.find_element(By.ID, "apps-note").text, what="the apps note")
    no_console_errors(browser, d)


def test_strings_from_pushes_labels_and_marathon_show_as_text(daemon, marathon, browser, tmp_path):
    emu = marathon([app("/console/web", IMG), app("/console/evil", IMG, pattern=XSS_LABEL)])
    emu.set_behaviour("/console/web", "fail", seconds=0.2, message=XSS_TASK, times=1)
    d = start_daemon(daemon, emu)
    d.post_event(push(tag="master-2", pusher=XSS_PUSHER)[0])
    rec = wait_records(d, "/console/web")[0]
    assert rec["state"] == "failed" and "window.__xss" in rec["task_message"], rec

    open_console(browser, d)
    wait_dom(browser, lambda x: deployment_row(x, "/console/web", "failed"), what="the failed deployment")
    wait_dom(browser, lambda x: any(t.startswith("/console/evil") for t in row_texts(x, "apps")), what="the apps")
    page = browser.find_element(By.TAG_NAME, "body").text
    # Shown as the very text that was sent...
    assert XSS_PUSHER in page
    assert "<img src=x onerror=\"window.__xss='task'\">" in deployment_row(browser, "/console/web")["text"]
    evil = find_row(browser, "apps", "app", "/console/evil")["text"]
    assert "<img" in evil and "<script>window.__xss='label'</script>" in evil
    # ...and nothing of it became an element or ran.
    assert browser.execute_script("return window.__xss === undefined")
    assert browser.find_elements(By.CSS_SELECTOR, "main img, table img, section img, table script") == []
    assert len(browser.find_elements(By.TAG_NAME, "script")) == 1
    no_console_errors(browser, d)  # a CSP violation would be one
    shot(browser, tmp_path, "console-escaped.png")


def test_page_asks_for_the_token_and_acts_with_the_admin_token(daemon, marathon, browser, tmp_path):
    emu = marathon([app("/console/web", IMG)])
    d = start_daemon(daemon, emu, "--ui-token", UI_TOKEN, "--admin-token", ADMIN)
    d.post_event(push(tag="master-2")[0])
    auth = {"Authorization": "Bearer " + UI_TOKEN}
    wait_for(lambda: [r for r in d.request("GET", "/v1/deployments", headers=auth).json()["deployments"]
                      if r["state"] == "succeeded"], what="the deployment")

    browser.get(url(d))
    wait_dom(browser, lambda x: "needs a token" in x.find_element(By.ID, "message").text, what="the token prompt")
    assert not deployment_row(browser, "/console/web")
    console_errors(browser)  # the 401s of the prompt; what follows must add none

    def use(token, name=""):
        browser.find_element(By.ID, "token").send_keys(token)
        browser.find_element(By.ID, "who").clear()
        browser.find_element(By.ID, "who").send_keys(name)
        browser.find_element(By.CSS_SELECTOR, "#token-form button[type=submit]").click()

    use(UI_TOKEN)
    wait_dom(browser, lambda x: deployment_row(x, "/console/web", "succeeded"), what="the deployment after the token")
    assert "token" not in browser.current_url and UI_TOKEN not in browser.current_url
    assert browser.execute_script("return document.cookie") == ""
    assert browser.find_element(By.ID, "token").get_attribute("value") == ""
    assert UI_TOKEN not in browser.page_source

    # The UI token cannot pause; the admin token can.
    wait_dom(browser, lambda x: x.find_element(By.ID, "pause").is_enabled(), what="the pause button")
    browser.find_element(By.ID, "pause").click()
    wait_dom(browser, lambda x: "refused" in x.find_element(By.ID, "message").text, what="the refusal")
    assert d.request("GET", "/readyz").json()["paused"] is False
    console_errors(browser)  # the refused POST's 401
    use(ADMIN, "carol")
    wait_dom(browser, lambda x: x.find_element(By.ID, "pause").is_enabled() and "refused" not in x.find_element(By.ID, "message").text,
             what="the page after the admin token")
    browser.find_element(By.ID, "pause").click()
    wait_dom(browser, lambda x: x.find_element(By.ID, "state-deployer").text == "paused", what="the pause")
    assert d.request("GET", "/readyz").json()["paused"] is True
    browser.find_element(By.ID, "resume").click()
    wait_dom(browser, lambda x: x.find_element(By.ID, "state-deployer").text == "running", what="the resume")
    no_console_errors(browser, d, ADMIN)
    shot(browser, tmp_path, "console-token.png")


def test_an_approval_clicked_in_the_page_deploys_the_app(daemon, marathon, browser, tmp_path):
    emu = marathon([app("/console/gated", IMG, labels=APPROVAL_LABELS)])
    d = start_daemon(daemon, emu, "--admin-token", ADMIN)
    assert not approvals_missing(d), "GET /v1/approvals must answer"
    d.post_event(push(tag="master-2", pusher="dave")[0])

    def pending():
        items = d.request("GET", "/v1/approvals").json()["approvals"]
        return [a for a in items if a["app"] == "/console/gated" and a["state"] == "pending"]
    approval = wait_for(pending, what="a pending approval")[0]
    assert app_state(emu, "/console/gated")["definition"]["container"]["docker"]["image"] == IMG  # waits for us

    open_console(browser, d)
    browser.find_element(By.ID, "token").send_keys(ADMIN)
    browser.find_element(By.ID, "who").clear()
    browser.find_element(By.ID, "who").send_keys("erin")
    browser.find_element(By.CSS_SELECTOR, "#token-form button[type=submit]").click()
    button = f"#approvals tbody tr[data-id='{approval['id']}'] button.approve"
    wait_dom(browser, lambda x: x.find_elements(By.CSS_SELECTOR, button), what="the Approve button")
    row = find_row(browser, "approvals", "id", approval["id"])["text"]
    assert "dave" in row and "master-2" in row
    wait_dom(browser, lambda x: x.find_element(By.CSS_SELECTOR, button).click() or True, what="the click")

    rec = wait_records(d, "/console/gated")[0]
    assert rec["state"] == "succeeded", rec
    assert app_state(emu, "/console/gated")["definition"]["container"]["docker"]["image"].endswith("foo-service:master-2")
    done = [a for a in d.request("GET", "/v1/approvals").json()["approvals"] if a["id"] == approval["id"]][0]
    assert done["state"] == "approved" and done["decided_by"] == "erin" and done["decided_via"] == "console"
    wait_dom(browser, lambda x: deployment_row(x, "/console/gated", "succeeded"), what="the deployment in the page")
    no_console_errors(browser, d)
    shot(browser, tmp_path, "console-approval.png")


class ApprovalsFake:
    """The approvals API of issue #15 as its contract says (GET /v1/approvals, POST
    /v1/approvals/{id}/approve|reject with the admin token and {"by","via"}), in front of a real
    autodeployd that answers everything else: the page's side of the contract, tested before
    the approvals branch is merged. Records every POST it receives."""

    def __init__(self, daemon, approvals):
        self.daemon, self.approvals, self.posts = daemon, approvals, []
        self.decided_elsewhere = set()  # ids still listed as pending that a POST finds decided
        fake = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def log_message(self, *a):
                pass

            def answer(self, status, body, ctype="application/json", headers=()):
                self.send_response(status)
                self.send_header("Content-Type", ctype)
                self.send_header("Content-Length", str(len(body)))
                for k, v in headers:
                    self.send_header(k, v)
                self.end_headers()
                self.wfile.write(body)

            def do_GET(self):
                if self.path == "/v1/approvals":
                    return self.answer(200, json.dumps({"approvals": fake.approvals}).encode())
                r = fake.daemon.request("GET", self.path, headers={k: v for k, v in self.headers.items()
                                                                   if k.lower() == "authorization"})
                keep = [(k, v) for k, v in r.headers.items() if k.lower() not in
                        ("content-type", "content-length", "connection", "date", "transfer-encoding")]
                self.answer(r.status, r.body, r.headers.get("Content-Type", "text/plain"), keep)

            def do_POST(self):
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                parts = self.path.split("/")  # ['', 'v1', 'approvals', id, verb]
                fake.posts.append({"path": self.path, "headers": dict(self.headers.items()), "body": body})
                if len(parts) != 5 or parts[2] != "approvals":
                    return self.answer(404, b'{"error":"not found"}')
                if self.headers.get("Authorization") != "Bearer " + ADMIN:
                    return self.answer(401, b'{"error":"missing or invalid admin bearer token"}')
                found = [a for a in fake.approvals if a["id"] == parts[3]]
                if not found:
                    return self.answer(404, b'{"error":"no such approval"}')
                a = found[0]
                if a["state"] != "pending" or a["id"] in fake.decided_elsewhere:
                    return self.answer(409, b'{"error":"no longer pending"}')
                req = json.loads(body)
                a.update(state="approved" if parts[4] == "approve" else "rejected", decided_by=req["by"],
                         decided_via=req["via"], decided_at="2026-12-02T10:00:00Z")
                self.answer(200, json.dumps(a).encode())

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.port = self.server.server_address[1]
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def stop(self):
        self.server.shutdown()
        self.server.server_close()


def approval(n, app_id, state="pending", pusher="dave"):
    return {"id": f"ap-{n}", "app": app_id, "image": f"registry.example.com:5000/strava/foo-service:master-{n}",
            "old_image": IMG, "digest": f"sha256:{n:064x}", "pusher": pusher, "source": "registry",
            "created_at": "2026-12-02T09:00:00Z", "expires_at": "2026-12-03T09:00:00Z", "state": state,
            "decided_by": None, "decided_via": None, "decided_at": None}


def test_approvals_panel_keeps_the_contract(daemon, marathon, browser, tmp_path):
    """Before the approvals API is merged: the panel against a fake of its contract. Pending
    approvals show with their buttons (and a hostile pusher name as text); Approve and Reject
    post to the contract's URLs with the admin token in a header and {"by", "via": "console"};
    an approval no longer pending says so; without the admin token nothing is posted."""
    emu = marathon([app("/console/web", IMG)])
    d = start_daemon(daemon, emu, "--admin-token", ADMIN)
    fake = ApprovalsFake(d, [approval(3, "/console/web", pusher=XSS_PUSHER), approval(4, "/console/api"),
                             approval(5, "/console/old", state="expired")])
    try:
        browser.get(f"http://127.0.0.1:{fake.port}/")
        wait_dom(browser, lambda x: len(x.find_elements(By.CSS_SELECTOR, "#approvals button.approve")) == 2,
                 what="two pending approvals with buttons")
        assert browser.find_element(By.ID, "approvals-count").text == "(2)"
        texts = row_texts(browser, "approvals")
        assert XSS_PUSHER in texts[0] and "master-3" in texts[0] and "expired" in texts[2]
        assert browser.execute_script("return window.__xss === undefined")

        # Without a token the page asks for one and posts nothing.
        browser.find_element(By.CSS_SELECTOR, "tr[data-id='ap-3'] button.approve").click()
        wait_dom(browser, lambda x: "needs the admin token" in x.find_element(By.ID, "message").text, what="the prompt")
        assert fake.posts == []

        browser.find_element(By.ID, "token").send_keys(ADMIN)
        browser.find_element(By.ID, "who").send_keys("erin")
        browser.find_element(By.CSS_SELECTOR, "#token-form button[type=submit]").click()
        wait_dom(browser, lambda x: x.find_element(By.CSS_SELECTOR, "tr[data-id='ap-3'] button.approve").click() or True,
                 what="the click on Approve")
        wait_dom(browser, lambda x: (find_row(x, "approvals", "id", "ap-3") or {}).get("data", {}).get("state") == "approved",
                 what="the approval approved")
        post = fake.posts[-1]
        assert post["path"] == "/v1/approvals/ap-3/approve"
        assert post["headers"]["Authorization"] == "Bearer " + ADMIN
        assert post["headers"]["Content-Type"] == "application/json"
        assert json.loads(post["body"]) == {"by": "erin", "via": "console"}
        assert "by erin via console" in find_row(browser, "approvals", "id", "ap-3")["text"]

        wait_dom(browser, lambda x: x.find_element(By.CSS_SELECTOR, "tr[data-id='ap-4'] button.reject").click() or True,
                 what="the click on Reject")
        wait_dom(browser, lambda x: (find_row(x, "approvals", "id", "ap-4") or {}).get("data", {}).get("state") == "rejected",
                 what="the approval rejected")
        assert fake.posts[-1]["path"] == "/v1/approvals/ap-4/reject"
        assert browser.find_element(By.ID, "approvals-count").text == "(0)"
        assert "Cookie" not in post["headers"] and ADMIN not in post["path"]

        # Decided elsewhere meanwhile (Slack): the click gets 409 and the page says so.
        fake.approvals.append(approval(6, "/console/web"))
        wait_dom(browser, lambda x: x.find_elements(By.CSS_SELECTOR, "tr[data-id='ap-6'] button.approve"), what="a new approval")
        fake.decided_elsewhere.add("ap-6")
        wait_dom(browser, lambda x: x.find_element(By.CSS_SELECTOR, "tr[data-id='ap-6'] button.approve").click() or True,
                 what="the click on Approve")
        wait_dom(browser, lambda x: "no longer pending" in x.find_element(By.ID, "message").text, what="the 409")
        console_errors(browser)  # the 409 is logged by the browser, as it should be
        shot(browser, tmp_path, "console-approvals.png")
    finally:
        fake.stop()
