"""Other registries' webhooks (/v1/webhooks/<source>) against the real binary: each source's
authentication (good, bad and missing credentials), malformed bodies, events that are not
tagged pushes, a source left unconfigured, path secrets kept out of the log, and the resulting
deployments against the Marathon emulator.

One daemon with every source configured serves the answer tests, one without any secret the
404s, one with Marathon the deployments.
"""
import base64
import hashlib
import hmac
import json
import os
import re

import pytest

from conftest import Daemon, fixture_bytes, wait_for
from deploy_helpers import app, marathon, push, start_daemon, writes, wait_records  # noqa: F401
from oci_images import write_image
from registry_helpers import registry  # noqa: F401

SECRETS = {
    "harbor": "harbor-auth-header-token",
    "github": "github hook secret: It's a Secret",
    "dockerhub": "dockerhubPathSecret0123456789",
    "quay": "quay-path-secret-abcdefghijkl",
    "artifactory": "jfrog-event-auth-secret",
    "nexus": "nexus-hmac-secret-key",
    "ecr": "eventbridge-api-key-value",
    "gar": "pubsub-path-secret_0123456789",
    "acr": "acr-custom-header-token",
}
FLAG = {"harbor": "--harbor-webhook-token", "github": "--github-webhook-secret",
        "dockerhub": "--dockerhub-webhook-secret", "quay": "--quay-webhook-secret",
        "artifactory": "--artifactory-webhook-secret", "nexus": "--nexus-webhook-secret",
        "ecr": "--ecr-webhook-token", "gar": "--gar-webhook-secret", "acr": "--acr-webhook-token"}
PATH_SECRET = {"dockerhub", "quay", "gar"}

# Per source: a push fixture and how many pushes it names; a fixture that is not a tagged push.
PUSHES = {"harbor": ("harbor_push_multi_tag.json", 2), "github": ("github_package_published.json", 1),
          "dockerhub": ("dockerhub_docs_push_latest.json", 1), "quay": ("quay_push_two_tags.json", 2),
          "artifactory": ("artifactory_docker_pushed.json", 1),
          "nexus": ("nexus_component_created.json", 1), "ecr": ("ecr_push.json", 1),
          "gar": ("gar_insert.json", 1), "acr": ("acr_bare_push.json", 1)}
IGNORED = {"harbor": "harbor_push_by_digest.json", "github": "github_package_npm.json",
           "dockerhub": "dockerhub_jenkins_no_tag.json", "quay": None,
           "artifactory": "artifactory_docker_deleted.json", "nexus": "nexus_component_maven.json",
           "ecr": "ecr_delete.json", "gar": "gar_delete.json", "acr": "acr_bare_delete.json"}
SOURCES = sorted(SECRETS)


def fixture(name):
    return fixture_bytes("webhooks", name)


def post(d, source, body, good=True, auth=True, event="package", jfrog_signed=False):
    """POSTs body the way source sends it: with its credentials (right ones when good)."""
    secret = SECRETS[source] if good else SECRETS[source][::-1]
    path = "/v1/webhooks/" + source
    headers = {"Content-Type": "application/json"}
    if source in PATH_SECRET:
        if auth:
            path += "/" + secret
    elif not auth:
        pass
    elif source == "github":
        headers["X-Hub-Signature-256"] = "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()
    elif source == "nexus":
        headers["X-Nexus-Webhook-Signature"] = hmac.new(secret.encode(), body, hashlib.sha1).hexdigest()
    elif source == "artifactory":
        headers["X-JFrog-Event-Auth"] = (hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()
                                         if jfrog_signed else secret)
    else:
        headers["Authorization"] = "Bearer " + secret
    if source == "github" and event:
        headers["X-GitHub-Event"] = event
    return d.request("POST", path, body=body, headers=headers)


def sanitizer_problems(d):
    text = d.log_text()
    return [m for m in ("ERROR: AddressSanitizer", "ERROR: LeakSanitizer", "runtime error:",
                        "WARNING: ThreadSanitizer") if m in text]


@pytest.fixture(scope="module")
def all_sources(tmp_path_factory):
    args = []
    for s in SOURCES:
        args += [FLAG[s], SECRETS[s]]
    d = Daemon(tmp_path_factory.mktemp("all-sources"), args + ["--log-level", "debug"])
    yield d
    d.stop()
    assert not sanitizer_problems(d)


@pytest.fixture(scope="module")
def no_sources(tmp_path_factory):
    d = Daemon(tmp_path_factory.mktemp("no-sources"))
    yield d
    d.stop()
    assert not sanitizer_problems(d)


@pytest.mark.parametrize("source", SOURCES)
def test_good_credentials_accept_the_push(all_sources, source):
    name, n = PUSHES[source]
    r = post(all_sources, source, fixture(name))
    assert r.status == 202, (r.status, r.body)
    got = r.json()
    assert got["accepted"] + got["duplicate"] == n and got["rejected"] == 0, got
    assert any(p["source"] == source for p in all_sources.pushes())


@pytest.mark.parametrize("source", SOURCES)
def test_wrong_or_missing_credentials_are_401(all_sources, source):
    body = fixture(PUSHES[source][0])
    assert post(all_sources, source, body, good=False).status == 401
    assert post(all_sources, source, body, auth=False).status == 401


@pytest.mark.parametrize("source", SOURCES)
def test_malformed_body_is_400(all_sources, source):
    r = post(all_sources, source, b'{"not": "a ' + source.encode() + b' payload"')
    assert r.status == 400 and "error" in r.json(), r.body


@pytest.mark.parametrize("source", [s for s in SOURCES if IGNORED[s]])
def test_not_a_tagged_push_is_2xx_and_ignored(all_sources, source):
    r = post(all_sources, source, fixture(IGNORED[source]))
    assert r.status == 202 and r.json()["ignored"] == 1 and r.json()["accepted"] == 0, r.body


def test_github_ping_is_200_and_other_auth_forms(all_sources):
    r = post(all_sources, "github", fixture("github_ping.json"), event="ping")
    assert r.status == 200 and r.json()["ignored"] == 1, r.body
    assert post(all_sources, "github", fixture("github_ping.json"), event=None).status == 400
    # JFrog with payload signing on sends the HMAC instead of the secret.
    body = fixture("artifactory_docker_deleted.json")
    assert post(all_sources, "artifactory", body, jfrog_signed=True).status == 202
    assert post(all_sources, "artifactory", body, good=False, jfrog_signed=True).status == 401
    # The ACR endpoint takes the envelope shape too.
    r = post(all_sources, "acr", fixture("acr_envelope_push.json"))
    assert r.status == 202 and r.json()["accepted"] + r.json()["duplicate"] == 1
    # A header source given a path secret, and an unknown source: not found.
    assert all_sources.request("POST", "/v1/webhooks/harbor/x", body=b"{}").status == 404
    assert all_sources.request("POST", "/v1/webhooks/gitea", body=b"{}").status == 404
    assert all_sources.request("GET", "/v1/webhooks/quay/" + SECRETS["quay"]).status == 405


def test_counted_per_source(all_sources):
    post(all_sources, "ecr", fixture("ecr_push_failed.json"))
    m = all_sources.metrics()
    assert m.get('autodeploy_source_events_total{source="ecr",result="ignored"}', 0) >= 1, m
    assert m.get('autodeploy_events_total{result="ignored"}', 0) >= 1


def test_path_secrets_never_reach_the_log(all_sources):
    for s in PATH_SECRET:
        post(all_sources, s, fixture(PUSHES[s][0]))
        post(all_sources, s, fixture(PUSHES[s][0]), good=False)
    text = all_sources.log_text()
    assert "webhook refused" in text and "/v1/webhooks/quay/***" in text
    for s in SOURCES:
        assert SECRETS[s] not in text and SECRETS[s][::-1] not in text, s


@pytest.mark.parametrize("source", SOURCES)
def test_unconfigured_source_is_404(no_sources, source):
    r = post(no_sources, source, fixture(PUSHES[source][0]))
    assert r.status == 404 and "not enabled" in r.json()["error"], r.body
    # Whatever the method: a source not enabled is not there at all.
    assert no_sources.request("GET", "/v1/webhooks/" + source).status == 404


# ---- deployments

# Per source: the app that its push fixture deploys, and the image it runs before.
APPS = {
    "harbor": ("/w/harbor", "harbor.example.com/team/web:v1.3.0", "team/web:v1.*"),
    "github": ("/w/github", "ghcr.io/utaitebox/utaitebox-server:3.2.0", "utaitebox/utaitebox-server:3.*"),
    "dockerhub": ("/w/dockerhub", "svendowideit/testhook:latest", "svendowideit/testhook:latest"),
    "quay": ("/w/quay", "quay.io/mynamespace/repository:latest", "mynamespace/repository:latest"),
    # The repository-path access method (the default): host / repo_key / image.
    "artifactory": ("/w/artifactory", "example.jfrog.io/docker-remote-cache/library/ubuntu:22.04",
                    "docker-remote-cache/library/ubuntu:latest"),
    "nexus": ("/w/nexus", "nexus.example.com:8082/team/api:2.0.1", "team/api:2.0.1"),
    "ecr": ("/w/ecr", "123456789012.dkr.ecr.us-west-2.amazonaws.com/my-repository-name:stable",
            "my-repository-name:latest"),
    "gar": ("/w/gar", "us-east1-docker.pkg.dev/my-project/my-repo/hello-world:1.0",
            "my-project/my-repo/hello-world:1.*"),
    "acr": ("/w/acr", "myregistry.azurecr.io/hello-world:v0", "hello-world:v*"),
}
WANT_IMAGE = {
    "harbor": "harbor.example.com/team/web:v1.4.0",
    "github": "ghcr.io/utaitebox/utaitebox-server:3.2.1",
    "dockerhub": "svendowideit/testhook:latest",
    "quay": "quay.io/mynamespace/repository:latest",
    "artifactory": "example.jfrog.io/docker-remote-cache/library/ubuntu:latest",
    "nexus": "nexus.example.com:8082/team/api:2.0.1",
    "ecr": "123456789012.dkr.ecr.us-west-2.amazonaws.com/my-repository-name:latest",
    "gar": "us-east1-docker.pkg.dev/my-project/my-repo/hello-world:1.1",
    "acr": "myregistry.azurecr.io/hello-world:v1",
}
DIGESTLESS = {"dockerhub", "quay", "nexus"}


def fixture_digest(source):
    row = [json.loads(line) for line in fixture("expected.jsonl").decode().splitlines()]
    return next(r for r in row if r["file"] == PUSHES[source][0])["pushes"][0]["digest"]


def test_each_source_deploys(daemon, marathon):
    emu = marathon([app(a, image, pattern=pat, instances=1) for a, image, pat in APPS.values()])
    args = []
    for s in SOURCES:
        args += [FLAG[s], SECRETS[s]]
    d = start_daemon(daemon, emu, *args)   # --verify-push off: digest-less pushes go by tag
    for s in SOURCES:
        r = post(d, s, fixture(PUSHES[s][0]))
        assert r.status == 202 and r.json()["accepted"] == PUSHES[s][1], (s, r.body)
    # The same Harbor image through the Distribution notification Harbor also sends: once.
    body, _ = push(repo="team/web", tag="v1.4.0", dig=fixture_digest("harbor"),
                   host="harbor.example.com")
    assert d.post_event(body).json()["duplicate"] == 1
    for s in SOURCES:
        app_id = APPS[s][0]
        recs = wait_records(d, app_id, 1)
        assert recs[0]["state"] == "succeeded", (s, recs[0])
        patches = [w for w in writes(emu, app_id) if w["method"] == "PATCH"]
        assert len(patches) == 1, (s, patches)
        sent = json.loads(patches[0]["body"])
        docker = sent["container"]["docker"]
        assert docker["image"] == WANT_IMAGE[s], (s, docker)
        if s in DIGESTLESS:
            # Same tag, digest unknown: the agents must pull; no digest is claimed.
            assert docker["forcePullImage"] is True, s
            assert "autodeploy.digest" not in sent["labels"], (s, sent["labels"])
        else:
            assert sent["labels"]["autodeploy.digest"] == fixture_digest(s), (s, sent["labels"])
    assert len([w for w in writes(emu, "/w/harbor") if w["method"] == "PATCH"]) == 1


def test_digestless_push_takes_the_registrys_digest(daemon, marathon, registry, tmp_path):
    """--verify-push require: a Docker Hub push (no digest) is deployed with the digest the
    registry has for the tag; a second notification of the same image finds it running."""
    reg = registry("open")
    layout = str(tmp_path / "oci")
    write_image(layout, "latest", created="2026-03-01T12:00:00Z", salt="hub")
    dig = reg.push(layout, "latest", "team/app:latest")
    emu = marathon([app("/w/hub", "%s/team/app:latest" % reg.addr, pattern="team/app:latest",
                        instances=1)])
    d = start_daemon(daemon, emu, "--verify-push", "require",
                     FLAG["dockerhub"], SECRETS["dockerhub"])

    def hub(pushed_at):
        return json.dumps({"push_data": {"pushed_at": pushed_at, "pusher": "hubuser", "tag": "latest"},
                           "repository": {"repo_name": "team/app"}}).encode()

    assert post(d, "dockerhub", hub(1764000000)).json()["accepted"] == 1
    rec = wait_records(d, "/w/hub", 1)[0]
    assert rec["state"] == "succeeded" and rec["digest"] == dig, rec
    patches = [w for w in writes(emu, "/w/hub") if w["method"] == "PATCH"]
    sent = json.loads(patches[0]["body"])
    assert sent["labels"]["autodeploy.digest"] == dig
    assert sent["container"]["docker"]["forcePullImage"] is True
    # Pushed again without a change (a new pushed_at: a new push): found running, no update.
    assert post(d, "dockerhub", hub(1764000060)).json()["accepted"] == 1
    recs = wait_records(d, "/w/hub", 2)
    assert recs[0]["state"] == "unchanged", recs[0]
    assert len([w for w in writes(emu, "/w/hub") if w["method"] == "PATCH"]) == 1
