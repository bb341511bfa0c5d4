"""Single-platform OCI images with a chosen creation time, written into an OCI layout for skopeo
(no Docker engine, no network). Builds on oci_layout.py's blob writers.

    write_image(layout, "main-1", created="2026-01-01T10:00:00Z")   # config "created" as given
    write_image(layout, "main-2", created=datetime(2026, 1, 2, tzinfo=timezone.utc))
    write_image(layout, "repro", created=EPOCH)     # reproducible builds: 1970-01-01T00:00:00Z
    write_image(layout, "bare", created=None)       # no "created" in the config at all
    a = write_image(layout, "latest")               # each write of a ref makes new content ...
    b = write_image(layout, "latest")               # ... so b.digest != a.digest (":latest" moved)
    series(layout, "main", 3, start=datetime(...), step=timedelta(hours=1))  # main-1..main-3
    write_index(layout, "multi", {"amd64": "2026-01-01T00:00:00Z", "arm64": "2026-01-02T00:00:00Z"})

Every image has its own layer (content: the ref, the creation time, a salt and the generation of
that ref in this layout, unless `content` is given), so digests differ per tag and per write,
and are deterministic for the same calls on a fresh layout. The layout's index.json names each
image by `org.opencontainers.image.ref.name`; a second write of the same ref replaces the first
in the layout (as a rebuild would), so `oci:<layout>:latest` is the newest. Writing into a
layout made by oci_layout.write_layout keeps its refs; calling write_layout afterwards drops
these (it rewrites index.json).

Each write returns an Image: ref, digest, size, media_type, config_digest, config (the dict),
created (the string written, or None), content, platform.
"""
import collections
import datetime
import json
import os

from oci_layout import _layer, _put

EPOCH = "1970-01-01T00:00:00Z"
DEFAULT_CREATED = "2024-01-01T00:00:00Z"
_DEFAULT = object()
GENERATION_ANNOTATION = "org.autodeploy.test.generation"

OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
OCI_INDEX = "application/vnd.oci.image.index.v1+json"
OCI_CONFIG = "application/vnd.oci.image.config.v1+json"
OCI_LAYER = "application/vnd.oci.image.layer.v1.tar+gzip"

Image = collections.namedtuple(
    "Image", "ref digest size media_type config_digest config created content platform")


def rfc3339(value):
    """A datetime (naive = UTC), a Unix time, or a string (returned as is) -> RFC 3339 text."""
    if value is None or isinstance(value, str):
        return value
    if isinstance(value, (int, float)):
        value = datetime.datetime.fromtimestamp(value, datetime.timezone.utc)
    if value.tzinfo is None:
        value = value.replace(tzinfo=datetime.timezone.utc)
    value = value.astimezone(datetime.timezone.utc)
    if value.microsecond:
        return value.strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    return value.strftime("%Y-%m-%dT%H:%M:%SZ")


def _read_index(root):
    path = os.path.join(root, "index.json")
    if os.path.exists(path):
        with open(path) as f:
            return json.load(f)
    return {"schemaVersion": 2, "manifests": []}


def _add_ref(root, desc, ref):
    """Puts desc into index.json as `ref`, replacing an earlier image of that ref; returns the
    generation of this write (0 for the first)."""
    index = _read_index(root)
    keep = []
    for m in index.get("manifests", []):
        if (m.get("annotations") or {}).get("org.opencontainers.image.ref.name") == ref:
            continue
        keep.append(m)
    entry = {k: desc[k] for k in ("mediaType", "digest", "size")}
    entry["annotations"] = dict(desc.get("annotations") or {})
    entry["annotations"]["org.opencontainers.image.ref.name"] = ref
    keep.append(entry)
    index["manifests"] = keep
    with open(os.path.join(root, "index.json"), "w") as f:
        json.dump(index, f)
    with open(os.path.join(root, "oci-layout"), "w") as f:
        json.dump({"imageLayoutVersion": "1.0.0"}, f)


def _generation(root, ref):
    """How many times `ref` was written in this layout before (kept in an annotation)."""
    for m in _read_index(root).get("manifests", []):
        ann = m.get("annotations") or {}
        if ann.get("org.opencontainers.image.ref.name") == ref:
            return int(ann.get(GENERATION_ANNOTATION, "0")) + 1
    return 0


def _single(root, created, content, arch, os_name, labels, manifest_annotations, created_key=True):
    ldigest, lsize, diff_id = _layer(root, {"content.txt": content + "\n", "arch.txt": arch + "\n"})
    config = {}
    if created_key:
        config["created"] = created
    config.update({
        "architecture": arch,
        "os": os_name,
        "config": {"Cmd": ["/bin/cat", "/content.txt"], **({"Labels": dict(labels)} if labels else {})},
        "rootfs": {"type": "layers", "diff_ids": [diff_id]},
        "history": [{"created_by": "oci_images.py", **({"created": created} if created_key else {})}],
    })
    cb = json.dumps(config, separators=(",", ":")).encode()
    config_digest = _put(root, cb)
    manifest = {
        "schemaVersion": 2,
        "mediaType": OCI_MANIFEST,
        "config": {"mediaType": OCI_CONFIG, "digest": config_digest, "size": len(cb)},
        "layers": [{"mediaType": OCI_LAYER, "digest": ldigest, "size": lsize}],
    }
    if manifest_annotations:
        manifest["annotations"] = dict(manifest_annotations)
    mb = json.dumps(manifest, separators=(",", ":")).encode()
    return {"mediaType": OCI_MANIFEST, "digest": _put(root, mb), "size": len(mb),
            "platform": {"architecture": arch, "os": os_name}}, config_digest, config


def write_image(root, ref, created=_DEFAULT, content=None, salt="", arch="amd64", os_name="linux",
                labels=None, annotate_created=False):
    """Writes a single-platform image as `ref` into the layout at root and returns an Image.
    created: RFC 3339 string, datetime, Unix time, EPOCH, or None for no "created" field
    (default 2024-01-01T00:00:00Z). annotate_created also puts it in the manifest's
    org.opencontainers.image.created annotation."""
    os.makedirs(os.path.join(root, "blobs", "sha256"), exist_ok=True)
    created_key = created is not None
    created = rfc3339(DEFAULT_CREATED if created is _DEFAULT else created)
    gen = _generation(root, ref)
    if content is None:
        content = "image %s created=%s salt=%s generation=%d" % (ref, created, salt, gen)
    ann = {"org.opencontainers.image.created": created} if (annotate_created and created_key) else None
    desc, config_digest, config = _single(root, created, content, arch, os_name, labels, ann, created_key)
    desc["annotations"] = {GENERATION_ANNOTATION: str(gen)}
    _add_ref(root, desc, ref)
    return Image(ref, desc["digest"], desc["size"], OCI_MANIFEST, config_digest, config,
                 created if created_key else None, content, desc["platform"])


def series(root, prefix, n, start=datetime.datetime(2026, 1, 1, tzinfo=datetime.timezone.utc),
           step=datetime.timedelta(hours=1), salt=""):
    """Writes prefix-1 .. prefix-n, each `step` newer than the one before; returns the Images."""
    return [write_image(root, "%s-%d" % (prefix, i), created=start + step * (i - 1), salt=salt)
            for i in range(1, n + 1)]


def write_index(root, ref, platforms, content=None, salt=""):
    """A multi-platform OCI index as `ref`: platforms maps arch -> created (as write_image takes).
    Returns (Image of the index, {arch: Image of the child}); the children are not refs of the
    layout. The index's own Image has config_digest/config/created None."""
    os.makedirs(os.path.join(root, "blobs", "sha256"), exist_ok=True)
    gen = _generation(root, ref)
    children = {}
    descs = []
    for arch, created in platforms.items():
        created_key = created is not None
        created = rfc3339(created)
        text = content or "index %s/%s created=%s salt=%s generation=%d" % (ref, arch, created, salt, gen)
        desc, config_digest, config = _single(root, created, text, arch, "linux", None, None, created_key)
        children[arch] = Image(None, desc["digest"], desc["size"], OCI_MANIFEST, config_digest,
                               config, created if created_key else None, text, desc["platform"])
        descs.append(desc)
    index = {"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": descs}
    ib = json.dumps(index, separators=(",", ":")).encode()
    desc = {"mediaType": OCI_INDEX, "digest": _put(root, ib), "size": len(ib),
            "annotations": {GENERATION_ANNOTATION: str(gen)}}
    _add_ref(root, desc, ref)
    return Image(ref, desc["digest"], desc["size"], OCI_INDEX, None, None, None, None, None), children
