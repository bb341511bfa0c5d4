"""Writes a small OCI image layout by hand, so tests can push real images with skopeo
without a Docker engine or network.

write_layout(dir) creates refs:
  v1, v2   single-platform images (linux/amd64) with different content
  multi    an OCI image index with linux/amd64 and linux/arm64 images
Digests are deterministic (fixed mtimes, gzip without timestamps).
"""
import gzip
import hashlib
import io
import json
import os
import tarfile


def _put(root, data):
    digest = hashlib.sha256(data).hexdigest()
    with open(os.path.join(root, "blobs", "sha256", digest), "wb") as f:
        f.write(data)
    return "sha256:" + digest


def _layer(root, files):
    raw = io.BytesIO()
    with tarfile.open(fileobj=raw, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for name, text in sorted(files.items()):
            data = text.encode()
            info = tarfile.TarInfo(name)
            info.size = len(data)
            info.mtime = 1700000000
            info.mode = 0o644
            tar.addfile(info, io.BytesIO(data))
    raw = raw.getvalue()
    gz = io.BytesIO()
    with gzip.GzipFile(fileobj=gz, mode="wb", mtime=0) as g:
        g.write(raw)
    gz = gz.getvalue()
    return _put(root, gz), len(gz), "sha256:" + hashlib.sha256(raw).hexdigest()


def _image(root, text, arch):
    ldigest, lsize, diff_id = _layer(root, {"hello.txt": text + "\n", "arch.txt": arch + "\n"})
    config = {
        "created": "2024-01-01T00:00:00Z",
        "architecture": arch,
        "os": "linux",
        "config": {"Cmd": ["/bin/cat", "/hello.txt"]},
        "rootfs": {"type": "layers", "diff_ids": [diff_id]},
    }
    cb = json.dumps(config, separators=(",", ":")).encode()
    manifest = {
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": {"mediaType": "application/vnd.oci.image.config.v1+json",
                   "digest": _put(root, cb), "size": len(cb)},
        "layers": [{"mediaType": "application/vnd.oci.image.layer.v1.tar+gzip",
                    "digest": ldigest, "size": lsize}],
    }
    mb = json.dumps(manifest, separators=(",", ":")).encode()
    return {"mediaType": manifest["mediaType"], "digest": _put(root, mb), "size": len(mb),
            "platform": {"architecture": arch, "os": "linux"}}


def write_layout(root, salt=""):
    """Creates the layout in root; salt changes every digest (distinct images per test)."""
    os.makedirs(os.path.join(root, "blobs", "sha256"), exist_ok=True)
    v1 = _image(root, "hello v1" + salt, "amd64")
    v2 = _image(root, "hello v2" + salt, "amd64")
    amd = _image(root, "hello multi" + salt, "amd64")
    arm = _image(root, "hello multi" + salt, "arm64")
    index = {"schemaVersion": 2, "mediaType": "application/vnd.oci.image.index.v1+json",
             "manifests": [amd, arm]}
    ib = json.dumps(index, separators=(",", ":")).encode()
    multi = {"mediaType": index["mediaType"], "digest": _put(root, ib), "size": len(ib)}

    def ref(desc, name):
        d = {k: desc[k] for k in ("mediaType", "digest", "size")}
        d["annotations"] = {"org.opencontainers.image.ref.name": name}
        return d

    top = {"schemaVersion": 2, "manifests": [ref(v1, "v1"), ref(v2, "v2"), ref(multi, "multi")]}
    with open(os.path.join(root, "index.json"), "w") as f:
        json.dump(top, f)
    with open(os.path.join(root, "oci-layout"), "w") as f:
        json.dump({"imageLayoutVersion": "1.0.0"}, f)
    return {"v1": v1["digest"], "v2": v2["digest"], "multi": multi["digest"]}
