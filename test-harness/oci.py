#!/usr/bin/env python3
"""Builds an OCI image layout of the filter for Istio, without Docker, byte-for-byte reproducibly (`make oci`).

The image is Istio's "compat" Wasm image variant with OCI media types (what istio-agent's image fetcher, and
Envoy's, accept first, pkg/wasm/imagefetcher.go in Istio): an OCI image manifest whose last (here: only) layer
is `application/vnd.oci.image.layer.v1.tar+gzip`, a gzipped tar holding the module as `plugin.wasm`. The
config is a regular OCI image config (os `wasip1`, architecture `wasm`, the layer's diff_id), so registries,
skopeo and crane treat it as any image.

Reproducible: the same .wasm gives the same bytes twice. Tar entry with mtime 0, uid/gid 0, no user/group
names, mode 0644, USTAR format; gzip without file name and with mtime 0; JSON with a fixed key order and no
timestamps; the layout directory is written afresh.

Which digest goes where (printed at the end):
- `oci://` URLs (WasmPlugin `url`, EnvoyFilter `remote.http_uri.uri`): Istio compares WasmPlugin `sha256` /
  `remote.sha256` with the image MANIFEST digest (go-containerregistry's img.Digest()), hex without
  "sha256:". Equivalently pin the URL itself: `oci://REGISTRY/REPO@sha256:<manifest digest>`.
- `http(s)://` URLs serving the .wasm file itself: there `sha256` is the sha256 of the module bytes.

Usage: python3 test-harness/oci.py [--wasm FILE] [--out DIR] [--tag TAG] [--json]
Push it with e.g. `skopeo copy --preserve-digests oci:build/oci/oauth-mtls-filter:0.1.0 docker://REGISTRY/oauth-mtls-filter:0.1.0`.
"""
from __future__ import annotations

import argparse
import gzip
import hashlib
import io
import json
import os
import pathlib
import re
import shutil
import sys
import tarfile
import tempfile

REPO = pathlib.Path(__file__).resolve().parent.parent
DEFAULT_WASM = REPO / "target" / "wasm32-wasip1" / "release" / "oauth_mtls_filter.wasm"
DEFAULT_OUT = REPO / "build" / "oci" / "oauth-mtls-filter"

MEDIA_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
MEDIA_INDEX = "application/vnd.oci.image.index.v1+json"
MEDIA_CONFIG = "application/vnd.oci.image.config.v1+json"
MEDIA_LAYER = "application/vnd.oci.image.layer.v1.tar+gzip"
PLUGIN_FILE = "plugin.wasm"  # the name Istio's compat-variant extractor looks for


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def canonical_json(obj) -> bytes:
    return json.dumps(obj, separators=(",", ":"), ensure_ascii=True).encode()


def crate_version() -> str:
    m = re.search(r'^version\s*=\s*"([^"]+)"', (REPO / "Cargo.toml").read_text(), re.M)
    return m.group(1) if m else "latest"


def layer_tar(wasm: bytes) -> bytes:
    info = tarfile.TarInfo(PLUGIN_FILE)
    info.size = len(wasm)
    info.mtime = 0
    info.mode = 0o644
    info.uid = info.gid = 0
    info.uname = info.gname = ""
    info.type = tarfile.REGTYPE
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.USTAR_FORMAT) as tar:
        tar.addfile(info, io.BytesIO(wasm))
    return buf.getvalue()


def gzip_bytes(data: bytes) -> bytes:
    buf = io.BytesIO()
    # filename="" and mtime=0: no name and no timestamp in the gzip header
    with gzip.GzipFile(filename="", mode="wb", fileobj=buf, mtime=0, compresslevel=9) as gz:
        gz.write(data)
    return buf.getvalue()


def build(wasm_path: pathlib.Path, out: pathlib.Path, tag: str) -> dict:
    """Writes the OCI image layout at `out` (replacing it) and returns its digests."""
    wasm = wasm_path.read_bytes()
    if wasm[:4] != b"\0asm":
        raise SystemExit(f"{wasm_path} is not a WebAssembly module")
    tar = layer_tar(wasm)
    layer = gzip_bytes(tar)
    config = canonical_json({
        "architecture": "wasm",
        "os": "wasip1",
        "config": {},
        "rootfs": {"type": "layers", "diff_ids": [f"sha256:{sha256(tar)}"]},
    })
    manifest = canonical_json({
        "schemaVersion": 2,
        "mediaType": MEDIA_MANIFEST,
        "config": {"mediaType": MEDIA_CONFIG, "digest": f"sha256:{sha256(config)}", "size": len(config)},
        "layers": [{"mediaType": MEDIA_LAYER, "digest": f"sha256:{sha256(layer)}", "size": len(layer),
                    "annotations": {"org.opencontainers.image.title": PLUGIN_FILE}}],
    })
    index = canonical_json({
        "schemaVersion": 2,
        "mediaType": MEDIA_INDEX,
        "manifests": [{"mediaType": MEDIA_MANIFEST, "digest": f"sha256:{sha256(manifest)}", "size": len(manifest),
                       "annotations": {"org.opencontainers.image.ref.name": tag}}],
    })
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = pathlib.Path(tempfile.mkdtemp(prefix=out.name + ".", dir=out.parent))
    try:
        blobs = tmp / "blobs" / "sha256"
        blobs.mkdir(parents=True)
        for blob in (layer, config, manifest):
            (blobs / sha256(blob)).write_bytes(blob)
        (tmp / "oci-layout").write_bytes(canonical_json({"imageLayoutVersion": "1.0.0"}))
        (tmp / "index.json").write_bytes(index)
        for p in [tmp, *tmp.rglob("*")]:
            os.chmod(p, 0o755 if p.is_dir() else 0o644)
        if out.exists():
            shutil.rmtree(out)
        tmp.rename(out)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return {
        "layout": str(out),
        "tag": tag,
        "manifest_digest": f"sha256:{sha256(manifest)}",
        "wasm_sha256": sha256(wasm),
        "layer_digest": f"sha256:{sha256(layer)}",
        "config_digest": f"sha256:{sha256(config)}",
    }


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--wasm", type=pathlib.Path, default=DEFAULT_WASM)
    ap.add_argument("--out", type=pathlib.Path, default=DEFAULT_OUT)
    ap.add_argument("--tag", default=None, help="ref name in index.json (default: the crate version)")
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args(argv)
    if not args.wasm.is_file():
        print(f"oci.py: {args.wasm} is missing; build it with `make build`", file=sys.stderr)
        return 2
    r = build(args.wasm, args.out, args.tag or crate_version())
    if args.json:
        print(json.dumps(r, indent=1))
        return 0
    hexdigest = r["manifest_digest"].split(":", 1)[1]
    print(f"OCI image layout: {r['layout']} (tag {r['tag']}; skopeo/oras name: oci:{r['layout']}:{r['tag']})")
    print(f"manifest digest:  {r['manifest_digest']}")
    print(f"  for oci:// URLs: WasmPlugin.sha256 / EnvoyFilter remote.sha256 = {hexdigest}")
    print(f"                   or pin the URL: oci://REGISTRY/oauth-mtls-filter@{r['manifest_digest']}")
    print(f"plugin.wasm sha256: {r['wasm_sha256']}")
    print("  (only for http(s):// URLs that serve the .wasm file itself)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
