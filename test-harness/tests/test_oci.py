"""`make oci` (test-harness/oci.py): an OCI image layout of the filter in Istio's compat format, the same bytes
on every build, which a real registry (Debian's docker-registry, on loopback) stores and skopeo pulls back
with the same digests and the same module."""
from __future__ import annotations

import gzip
import hashlib
import io
import json
import pathlib
import shutil
import subprocess
import sys
import tarfile
import time
import urllib.request

import pytest

import oci
from oauth_mtls_harness import envoy as envoy_mod

TOOLS_HINT = ("install them with `make system-deps` "
              "(apt-get install -y --no-install-recommends docker-registry skopeo)")


def _wasm() -> pathlib.Path:
    try:
        return envoy_mod.require_wasm()
    except envoy_mod.WasmMissing as e:
        pytest.fail(str(e), pytrace=False)


def _require(*tools: str) -> None:
    missing = [t for t in tools if shutil.which(t) is None]
    if missing:
        pytest.fail(f"{', '.join(missing)} not found on the PATH: {TOOLS_HINT}", pytrace=False)


def files(root: pathlib.Path) -> dict[str, bytes]:
    return {p.relative_to(root).as_posix(): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def blob(layout: pathlib.Path, digest: str) -> bytes:
    algo, hexd = digest.split(":", 1)
    data = (layout / "blobs" / algo / hexd).read_bytes()
    assert hashlib.sha256(data).hexdigest() == hexd, f"blob {digest} does not hash to its name"
    return data


def manifest_of(layout: pathlib.Path, tag: str) -> tuple[str, dict]:
    index = json.loads((layout / "index.json").read_bytes())
    (entry,) = [m for m in index["manifests"] if m["annotations"]["org.opencontainers.image.ref.name"] == tag]
    return entry["digest"], json.loads(blob(layout, entry["digest"]))


def plugin_wasm(layout: pathlib.Path, tag: str) -> bytes:
    """What Istio's compat extractor does: the last layer, tar+gzip, the entry named plugin.wasm."""
    _, manifest = manifest_of(layout, tag)
    layer = manifest["layers"][-1]
    assert layer["mediaType"] == "application/vnd.oci.image.layer.v1.tar+gzip"
    data = blob(layout, layer["digest"])
    assert len(data) == layer["size"]
    with tarfile.open(fileobj=io.BytesIO(gzip.decompress(data))) as tar:
        (member,) = tar.getmembers()
        assert member.name == "plugin.wasm" and member.isreg()
        return tar.extractfile(member).read()


def test_build_is_reproducible(tmp_path):
    wasm = _wasm()
    a = oci.build(wasm, tmp_path / "a", "t1")
    time.sleep(1.1)  # a second later: nothing may depend on the clock
    b = oci.build(wasm, tmp_path / "b", "t1")
    assert files(tmp_path / "a") == files(tmp_path / "b")
    assert a["manifest_digest"] == b["manifest_digest"]
    # and building over an existing layout leaves exactly the same files (no stale blobs)
    oci.build(wasm, tmp_path / "a", "t1")
    assert files(tmp_path / "a") == files(tmp_path / "b")


def test_layout_is_an_istio_compat_image_of_the_module(tmp_path):
    wasm = _wasm()
    r = oci.build(wasm, tmp_path / "img", "0.0.1")
    layout = tmp_path / "img"
    assert json.loads((layout / "oci-layout").read_bytes()) == {"imageLayoutVersion": "1.0.0"}
    digest, manifest = manifest_of(layout, "0.0.1")
    assert digest == r["manifest_digest"]
    assert manifest["mediaType"] == "application/vnd.oci.image.manifest.v1+json"
    assert len(manifest["layers"]) == 1
    assert plugin_wasm(layout, "0.0.1") == wasm.read_bytes()
    assert r["wasm_sha256"] == hashlib.sha256(wasm.read_bytes()).hexdigest()
    config = json.loads(blob(layout, manifest["config"]["digest"]))
    tar = gzip.decompress(blob(layout, manifest["layers"][0]["digest"]))
    assert config["rootfs"]["diff_ids"] == ["sha256:" + hashlib.sha256(tar).hexdigest()]
    with tarfile.open(fileobj=io.BytesIO(tar)) as t:
        (m,) = t.getmembers()
        assert (m.mtime, m.uid, m.gid, m.uname, m.gname, m.mode) == (0, 0, 0, "", "", 0o644)


def test_cli_prints_the_manifest_digest_for_oci_urls_and_the_module_digest_separately(tmp_path):
    wasm = _wasm()
    proc = subprocess.run([sys.executable, str(envoy_mod.REPO / "test-harness" / "oci.py"), "--wasm", str(wasm),
                           "--out", str(tmp_path / "img"), "--tag", "x"], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    digest, _ = manifest_of(tmp_path / "img", "x")
    wasm_hex = hashlib.sha256(wasm.read_bytes()).hexdigest()
    lines = proc.stdout.splitlines()
    assert any("WasmPlugin.sha256" in line and line.endswith(digest.split(":")[1]) for line in lines), proc.stdout
    assert any(line.startswith("plugin.wasm sha256:") and line.endswith(wasm_hex) for line in lines), proc.stdout


@pytest.fixture(scope="module")
def local_registry(tmp_path_factory):
    """Debian's docker-registry on 127.0.0.1:<free port>, storage in a temp dir, stopped after the module."""
    _require("docker-registry", "skopeo")
    d = tmp_path_factory.mktemp("registry")
    port = envoy_mod.free_port()
    (d / "config.yml").write_text(
        "version: 0.1\n"
        "log:\n  level: error\n"
        f"storage:\n  filesystem:\n    rootdirectory: {d / 'data'}\n"
        f"http:\n  addr: 127.0.0.1:{port}\n")
    with open(d / "registry.log", "wb") as log:  # the registry keeps its own copy of the descriptor
        proc = subprocess.Popen(["docker-registry", "serve", str(d / "config.yml")], stdout=log,
                                stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, start_new_session=True)

    def up():
        if proc.poll() is not None:
            raise AssertionError(f"docker-registry exited: {(d / 'registry.log').read_text()[-2000:]}")
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/v2/", timeout=2) as r:
                return r.status == 200
        except OSError:
            return False

    try:
        envoy_mod.poll(up, timeout=20, what="docker-registry answering /v2/")
        yield f"127.0.0.1:{port}"
    finally:
        envoy_mod.stop_process(proc)


def skopeo(*args: str) -> subprocess.CompletedProcess:
    proc = subprocess.run(["skopeo", *args], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, f"skopeo {' '.join(args)}: {proc.stdout}{proc.stderr}"
    return proc


def test_push_to_a_registry_and_pull_back_keeps_digests_and_module(local_registry, tmp_path):
    wasm = _wasm()
    r = oci.build(wasm, tmp_path / "img", "0.1.0")
    ref = f"docker://{local_registry}/oauth-mtls-filter:0.1.0"
    skopeo("copy", "--preserve-digests", "--dest-tls-verify=false", f"oci:{tmp_path / 'img'}:0.1.0", ref)

    # the registry serves our manifest bytes under our digest (what Istio compares `sha256` with)
    req = urllib.request.Request(f"http://{local_registry}/v2/oauth-mtls-filter/manifests/0.1.0",
                                 headers={"Accept": "application/vnd.oci.image.manifest.v1+json"})
    with urllib.request.urlopen(req, timeout=10) as resp:
        served = resp.read()
        assert resp.headers["Docker-Content-Digest"] == r["manifest_digest"]
    assert "sha256:" + hashlib.sha256(served).hexdigest() == r["manifest_digest"]
    raw = skopeo("inspect", "--raw", "--tls-verify=false", ref).stdout.encode()
    assert "sha256:" + hashlib.sha256(raw).hexdigest() == r["manifest_digest"]

    # pulled back into a new layout: same manifest digest, same blobs, the same module in plugin.wasm
    skopeo("copy", "--preserve-digests", "--src-tls-verify=false", ref, f"oci:{tmp_path / 'pulled'}:0.1.0")
    digest, manifest = manifest_of(tmp_path / "pulled", "0.1.0")
    assert digest == r["manifest_digest"]
    assert {p: b for p, b in files(tmp_path / "pulled").items() if p.startswith("blobs/")} == \
           {p: b for p, b in files(tmp_path / "img").items() if p.startswith("blobs/")}
    assert plugin_wasm(tmp_path / "pulled", "0.1.0") == wasm.read_bytes()

    # and by digest, as a pinned WasmPlugin/EnvoyFilter URL would name it
    skopeo("copy", "--src-tls-verify=false", f"docker://{local_registry}/oauth-mtls-filter@{r['manifest_digest']}",
           f"oci:{tmp_path / 'by-digest'}:pinned")
    assert plugin_wasm(tmp_path / "by-digest", "pinned") == wasm.read_bytes()
