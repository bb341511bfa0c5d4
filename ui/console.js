/*
 * autodeploy console: reads autodeployd's JSON API every 2 s and renders it; posts the admin
 * actions (pause, resume, approve, reject) with the token in an Authorization header.
 *
 * Every string from the API (pusher names, label patterns, Marathon's messages) reaches the
 * page through textContent only, never as HTML. The token is kept in sessionStorage (this tab
 * only), sent as "Authorization: Bearer" and never put in a URL or a cookie.
 */
"use strict";

(function () {
  var POLL_MS = 2000;
  var APPS_MS = 10000;          /* /v1/apps reads Marathon: less often, and after deployments change */
  var APPROVALS_RETRY_MS = 30000;
  var TOKEN_KEY = "autodeploy.token";
  var WHO_KEY = "autodeploy.who";

  var last = {};                /* JSON text last rendered per view: unchanged views are left alone */
  var deployments = [];
  var appsAt = 0, appsSig = "", approvalsMissingAt = 0;
  var status = null;
  var pollSaid = false;         /* the message shown is the poll's own (token, unreachable) */

  function $(id) { return document.getElementById(id); }

  function token() {
    try { return sessionStorage.getItem(TOKEN_KEY) || ""; } catch (e) { return ""; }
  }

  function who() {
    try { return sessionStorage.getItem(WHO_KEY) || ""; } catch (e) { return ""; }
  }

  /* An element with a class and a text; text is always set as text, never parsed as HTML. */
  function el(tag, cls, text) {
    var e = document.createElement(tag);
    if (cls) e.className = cls;
    if (text !== undefined && text !== null) e.textContent = String(text);
    return e;
  }

  function td(text, cls) { return el("td", cls, text === null || text === undefined || text === "" ? "—" : text); }

  function say(text, bad) {
    var m = $("message");
    pollSaid = false;
    m.textContent = text || "";
    m.className = bad ? "message bad" : "message";
  }

  function headers(json) {
    var h = {};
    var t = token();
    if (t) h.Authorization = "Bearer " + t;
    if (json) h["Content-Type"] = "application/json";
    return h;
  }

  /* GET path as JSON: {status, body} (body null when not JSON). Rejects on network errors. */
  function get(path) {
    return fetch(path, { headers: headers(false), cache: "no-store", credentials: "omit" })
      .then(function (r) {
        return r.text().then(function (t) {
          var body = null;
          try { body = JSON.parse(t); } catch (e) { body = null; }
          return { status: r.status, body: body };
        });
      });
  }

  function post(path, payload) {
    return fetch(path, {
      method: "POST", headers: headers(true), cache: "no-store", credentials: "omit",
      body: JSON.stringify(payload || {})
    }).then(function (r) {
      return r.text().then(function (t) {
        var body = null;
        try { body = JSON.parse(t); } catch (e) { body = null; }
        return { status: r.status, body: body };
      });
    });
  }

  function shortDigest(d) {
    if (!d) return "";
    var i = d.indexOf(":");
    return i >= 0 ? d.slice(0, i + 1) + d.slice(i + 1, i + 13) : d.slice(0, 12);
  }

  function when(iso) {
    if (!iso) return "";
    var t = new Date(iso);
    if (isNaN(t.getTime())) return String(iso);
    return t.toLocaleString();
  }

  function ago(iso) {
    var t = new Date(iso).getTime();
    if (!iso || isNaN(t)) return "";
    var s = Math.max(0, Math.round((Date.now() - t) / 1000));
    if (s < 90) return s + " s ago";
    if (s < 5400) return Math.round(s / 60) + " min ago";
    return Math.round(s / 3600) + " h ago";
  }

  function duration(s) {
    if (s === null || s === undefined || isNaN(s)) return "";
    if (s < 60) return s.toFixed(1) + " s";
    var m = Math.floor(s / 60);
    return m + " min " + Math.round(s - m * 60) + " s";
  }

  function stateBadge(state) {
    var safe = /^[a-z_]+$/.test(state || "") ? state : "other";
    return el("span", "state " + safe, state || "?");
  }

  /* Replaces a table's rows when its data changed; rows: array of <tr>, empty: text. */
  function fill(table, key, data, rows, empty) {
    var sig = JSON.stringify(data);
    if (last[key] === sig) return false;
    last[key] = sig;
    var body = $(table).tBodies[0];
    while (body.firstChild) body.removeChild(body.firstChild);
    if (!rows.length) {
      var tr = el("tr", "empty");
      var cell = el("td", null, empty);
      cell.colSpan = $(table).tHead.rows[0].cells.length;
      tr.appendChild(cell);
      body.appendChild(tr);
    }
    rows.forEach(function (r) { body.appendChild(r); });
    return true;
  }

  function image(repo, tag, host) {
    if (!repo) return "";
    return (host ? host + "/" : "") + repo + (tag ? ":" + tag : "");
  }

  /* ---------------------------------------------------------------- views */

  function renderStatus(s) {
    status = s;
    var paused = !!s.paused;
    var d = $("state-deployer");
    d.textContent = paused ? "paused" : "running";
    d.className = "badge " + (paused ? "warn" : "ok");
    var m = $("state-marathon");
    m.textContent = "Marathon " + (s.marathon || "unknown");
    m.className = "badge " + (s.marathon === "reachable" ? "ok" : s.marathon === "unreachable" ? "bad" : "");
    if (s.marathon_error) m.title = s.marathon_error;
    var e = $("state-stream");
    e.textContent = "event stream " + (s.event_stream || "unknown");
    e.className = "badge " + (s.event_stream === "attached" ? "ok" : "warn");
    var q = $("state-queue");
    q.textContent = "queue " + s.queued;
    q.className = "badge " + (s.queued > 0 ? "warn" : "");
    $("state-version").textContent = "v" + (s.version || "?") + ", up " + duration(s.uptime_s || 0);
    $("pause").disabled = paused;
    $("resume").disabled = !paused;
    $("pause").title = $("resume").title = s.admin_actions ? "needs the admin token" : "disabled: autodeployd runs without --admin-token";
  }

  function renderDeployments(list) {
    deployments = list;
    $("deployments-count").textContent = "(" + list.length + ")";
    var rows = list.map(function (r) {
      var tr = el("tr");
      tr.dataset.app = r.app || "";
      tr.dataset.state = r.state || "";
      tr.appendChild(td(r.app, "mono app"));
      var img = el("td", "mono");
      if (r.old_image && r.new_image && r.old_image !== r.new_image) {
        img.appendChild(el("span", null, r.old_image));
        img.appendChild(el("span", "arrow", " → "));
      }
      img.appendChild(el("span", null, r.new_image || image(r.repository, r.tag, r.registry)));
      if (r.digest && r.old_digest !== r.digest)
        img.appendChild(el("div", "muted", "digest " + (r.old_digest ? shortDigest(r.old_digest) + " → " : "") + shortDigest(r.digest)));
      tr.appendChild(img);
      var st = el("td");
      st.appendChild(stateBadge(r.state));
      tr.appendChild(st);
      var dur = r.duration_s;
      if ((dur === null || dur === undefined) && r.started_at && !r.ended_at)
        dur = (Date.now() - new Date(r.started_at).getTime()) / 1000;
      tr.appendChild(td(duration(dur)));
      var why = el("td", "reason");
      why.appendChild(el("div", null, r.reason || ""));
      if (r.task_message) why.appendChild(el("div", "task", "task: " + r.task_message));
      tr.appendChild(why);
      var dep = el("td", "mono", r.deployment_id || "—");
      if (r.rollback_deployment_id) dep.appendChild(el("div", null, "rollback " + r.rollback_deployment_id));
      tr.appendChild(dep);
      var t = td(ago(r.created_at));
      t.title = when(r.created_at);
      tr.appendChild(t);
      return tr;
    });
    fill("deployments", "deployments", list, rows, "No deployment yet.");
  }

  function renderPushes(list) {
    $("pushes-count").textContent = "(" + list.length + ")";
    var apps = {};
    deployments.forEach(function (r) {
      if (!r.event_id) return;
      (apps[r.event_id] = apps[r.event_id] || {})[r.app] = true;
    });
    var rows = list.map(function (p) {
      var tr = el("tr");
      tr.dataset.tag = p.tag || "";
      tr.appendChild(td(image(p.repository, p.tag, p.registry), "mono"));
      var dg = td(shortDigest(p.digest), "mono");
      dg.title = p.digest || "";
      tr.appendChild(dg);
      tr.appendChild(td(p.pusher, "pusher"));
      tr.appendChild(td(p.source));
      var t = td(ago(p.received_at));
      t.title = when(p.received_at);
      tr.appendChild(t);
      var n = apps[p.event_id] ? Object.keys(apps[p.event_id]).length : 0;
      tr.appendChild(td(String(n)));
      tr.appendChild(td(p.state + (p.replayed ? " (replayed)" : "")));
      return tr;
    });
    /* The app counts come from the deployments: they are part of what is compared. */
    fill("pushes", "pushes", [list, apps], rows, "No push yet.");
  }

  function renderApps(res) {
    var note = $("apps-note");
    if (res.status !== 200 || !res.body) {
      note.textContent = res.status === 503 ? "No Marathon configured." :
        "Cannot read the apps: " + ((res.body && res.body.error) || ("HTTP " + res.status));
      return;
    }
    note.textContent = "";
    var list = res.body.apps || [];
    $("apps-count").textContent = "(" + list.length + ")";
    var rows = list.map(function (a) {
      var tr = el("tr");
      tr.dataset.app = a.id || "";
      tr.appendChild(td(a.id, "mono app"));
      tr.appendChild(td(a.image, "mono"));
      var pat = el("td", "patterns mono");
      (a.patterns || []).forEach(function (p) { pat.appendChild(el("span", "chip", p)); });
      if (a.label_error) pat.appendChild(el("div", "task", a.label_error));
      tr.appendChild(pat);
      var set = el("td");
      var labels = a.labels || {};
      Object.keys(labels).sort().forEach(function (k) {
        set.appendChild(el("span", "chip", k.replace(/^autodeploy\./, "") + "=" + labels[k]));
      });
      tr.appendChild(set);
      var out = el("td");
      if (a.last) {
        out.appendChild(stateBadge(a.last.state));
        out.appendChild(el("span", "muted", " " + ago(a.last.at)));
        if (a.last.image) out.appendChild(el("div", "mono", a.last.image));
        if (a.last.reason) out.appendChild(el("div", "muted", a.last.reason));
      } else {
        out.textContent = "—";
      }
      tr.appendChild(out);
      return tr;
    });
    fill("apps", "apps", list, rows, "No app carries the label.");
  }

  function renderApprovals(res) {
    var note = $("approvals-note");
    if (res.status === 404) {
      approvalsMissingAt = Date.now();
      note.textContent = "This autodeployd has no approvals (GET /v1/approvals answers 404).";
      fill("approvals", "approvals", null, [], "—");
      return;
    }
    if (res.status !== 200 || !res.body) return;
    approvalsMissingAt = 0;
    var list = res.body.approvals || [];
    var pending = list.filter(function (a) { return a.state === "pending"; });
    var decided = list.filter(function (a) { return a.state !== "pending"; }).slice(0, 10);
    $("approvals-count").textContent = "(" + pending.length + ")";
    note.textContent = pending.length ? "Approving needs the admin token." : "";
    var rows = pending.concat(decided).map(function (a) {
      var tr = el("tr");
      tr.dataset.id = a.id || "";
      tr.dataset.app = a.app || "";
      tr.dataset.state = a.state || "";
      tr.appendChild(td(a.app, "mono app"));
      var img = el("td", "mono");
      if (a.old_image) {
        img.appendChild(el("span", null, a.old_image));
        img.appendChild(el("span", "arrow", " → "));
      }
      img.appendChild(el("span", null, a.image || ""));
      tr.appendChild(img);
      tr.appendChild(td(a.pusher, "pusher"));
      var c = td(ago(a.created_at));
      c.title = when(a.created_at);
      tr.appendChild(c);
      tr.appendChild(td(when(a.expires_at)));
      var st = el("td");
      st.appendChild(stateBadge(a.state));
      if (a.decided_by) st.appendChild(el("div", "muted", "by " + a.decided_by + (a.decided_via ? " via " + a.decided_via : "")));
      tr.appendChild(st);
      var act = el("td");
      if (a.state === "pending") {
        var ok = el("button", "approve", "Approve");
        ok.type = "button";
        ok.dataset.id = a.id;
        ok.dataset.verb = "approve";
        var no = el("button", "reject", "Reject");
        no.type = "button";
        no.dataset.id = a.id;
        no.dataset.verb = "reject";
        act.appendChild(ok);
        act.appendChild(document.createTextNode(" "));
        act.appendChild(no);
      }
      tr.appendChild(act);
      return tr;
    });
    fill("approvals", "approvals", list, rows, "Nothing waits for approval.");
  }

  /* ---------------------------------------------------------------- polling */

  var timer = null;
  var denied = false;           /* the last round was refused: ask less often until a token comes */

  function refresh() {
    if (timer) { clearTimeout(timer); timer = null; }
    if (document.hidden) {      /* a tab nobody looks at asks nothing (and /v1/apps reads Marathon) */
      timer = setTimeout(refresh, POLL_MS);
      return Promise.resolve();
    }
    var wantApprovals = !approvalsMissingAt || Date.now() - approvalsMissingAt > APPROVALS_RETRY_MS;
    var calls = [get("/v1/status"), get("/v1/deployments"), get("/v1/pushes"),
                 wantApprovals ? get("/v1/approvals") : Promise.resolve(null)];
    return Promise.all(calls).then(function (r) {
      denied = r.some(function (x) { return x && x.status === 401; });
      if (denied) {
        say(token() ? "The token was refused: paste --ui-token or --admin-token above."
                    : "This autodeployd needs a token to show its data: paste --ui-token or --admin-token above.", true);
        pollSaid = true;
        $("token-state").textContent = token() ? "refused" : "no token";
        return;
      }
      if (pollSaid) say("");
      $("token-state").textContent = token() ? "token set for this tab" : "";
      if (r[0].status === 200 && r[0].body) renderStatus(r[0].body);
      if (r[1].status === 200 && r[1].body) renderDeployments(r[1].body.deployments || []);
      if (r[2].status === 200 && r[2].body) renderPushes(r[2].body.pushes || []);
      if (r[3]) renderApprovals(r[3]);
      var sig = deployments.map(function (d) { return d.seq + d.state; }).join();
      if (status && status.marathon === "not configured") {
        $("apps-note").textContent = "No Marathon configured (--marathon-url).";
        return;
      }
      if (sig !== appsSig || Date.now() - appsAt > APPS_MS) {
        appsSig = sig;
        appsAt = Date.now();
        return get("/v1/apps").then(function (res) {
          if (res.status === 429) { appsAt = 0; return; }   /* busy: next round */
          renderApps(res);
        });
      }
    }).then(function () {
      $("updated").textContent = "Last update " + new Date().toLocaleTimeString() + ".";
    }, function (err) {
      say("autodeployd unreachable: " + (err && err.message ? err.message : err), true);
      pollSaid = true;
    }).then(function () {
      timer = setTimeout(refresh, denied ? 5 * POLL_MS : POLL_MS);
    });
  }

  /* ---------------------------------------------------------------- actions */

  function act(path, payload, what) {
    if (!token()) {
      say(what + " needs the admin token: paste it above.", true);
      return;
    }
    post(path, payload).then(function (r) {
      var err = r.body && r.body.error ? ": " + r.body.error : "";
      if (r.status === 200) say(what + ": done.");
      else if (r.status === 401) say(what + " refused: this needs the admin token" + err, true);
      else if (r.status === 403) say(what + " refused" + err, true);
      else if (r.status === 409) say(what + ": no longer pending" + err, true);
      else if (r.status === 404) say(what + ": not found" + err, true);
      else say(what + " failed (HTTP " + r.status + ")" + err, true);
      appsAt = 0;
      last.approvals = null;    /* redrawn: a refused click's button comes back */
      refresh();
    }, function (e) {
      say(what + " failed: " + (e && e.message ? e.message : e), true);
    });
  }

  function start() {
    $("who").value = who();
    $("token-form").addEventListener("submit", function (ev) {
      ev.preventDefault();
      try {
        sessionStorage.setItem(TOKEN_KEY, $("token").value.trim());
        sessionStorage.setItem(WHO_KEY, $("who").value.trim());
      } catch (e) { /* storage refused: nothing is kept */ }
      $("token").value = "";
      say("");
      last = {};
      appsAt = 0;
      refresh();
    });
    $("forget").addEventListener("click", function () {
      try { sessionStorage.removeItem(TOKEN_KEY); } catch (e) { /* nothing kept */ }
      $("token-state").textContent = "";
      refresh();
    });
    $("pause").addEventListener("click", function () { act("/v1/pause", {}, "Pause"); });
    $("resume").addEventListener("click", function () { act("/v1/resume", {}, "Resume"); });
    $("approvals").addEventListener("click", function (ev) {
      var b = ev.target;
      if (!b || b.tagName !== "BUTTON" || !b.dataset.id) return;
      var verb = b.dataset.verb === "reject" ? "reject" : "approve";
      if (token()) b.disabled = true;   /* one click, one request; redrawn after the answer */
      act("/v1/approvals/" + encodeURIComponent(b.dataset.id) + "/" + verb,
          { by: who() || "console", via: "console" },
          (verb === "approve" ? "Approve " : "Reject ") + (b.closest("tr").dataset.app || ""));
    });
    refresh();
  }

  document.addEventListener("visibilitychange", function () { if (!document.hidden) refresh(); });

  if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", start);
  else start();
})();
