"""Load and soak: Envoy (envoy/direct-mtls.yaml, --concurrency 2) with the filter, a registry refreshed every
second with churn, and mixed token traffic over several keep-alive mTLS connections to 127.0.0.1.

    test-harness/.venv/bin/python -m oauth_mtls_harness.soak --duration 600     # `make soak`

Every request's expected outcome is known when it is sent: the clients that are requested are stable
(inline, or in every registry version); the churned ones (added and removed at each refresh) are never
requested. Outcomes: `accepted` (200, the AS saw x-mtls-client-id and the certificate's x5t#S256),
`rejected` (401 invalid_client, the AS saw nothing), `passed` (200, the AS saw no annotation). Anything
else is `unexpected`. Envoy's RSS (VmRSS of its process) and the filter's shared-data size (gauge
oauth_mtls.registry.bytes) are sampled; after warm-up they must not grow by 5 % or more.
"""
from __future__ import annotations

import argparse
import base64
import http.client
import json
import pathlib
import sys
import threading
import time
from collections import Counter
from dataclasses import dataclass, field

from oauth_mtls_harness import client, pki, servers
from oauth_mtls_harness import envoy as envoy_mod
from oauth_mtls_harness.checks import SPOOFED, self_signed_client, tls_client

FORM = "application/x-www-form-urlencoded"
BYTES_GAUGE = "oauth_mtls.registry.bytes"
REGISTRY_PATH = "/clients"
GROWTH_LIMIT = 0.05

# Registry clients present in every version of the document (requested, so stable).
STABLE = [
    tls_client("stable-dn", subject_dn=pki.DN_CLIENT_RFC4514),
    tls_client("stable-uri", san_uri="spiffe://example.org/client"),
    self_signed_client("stable-ss", jwks=pki.jwks("self-signed-1")),
    {"client_id": "stable-secret", "token_endpoint_auth_method": "client_secret_basic"},
]


def plugin() -> dict:
    return {
        "unknown_client": "pass",
        "clients": [tls_client("demo-client", subject_dn=pki.DN_CLIENT_RFC4514)],
        "registry": {"cluster": "registry", "authority": "registry.soak", "path": REGISTRY_PATH,
                     "refresh_seconds": 1, "timeout_ms": 1000, "max_stale_seconds": 60},
    }


def churned(tick: int, per_tick: int, window: int) -> list[dict]:
    first = tick * per_tick
    return [tls_client(f"churn-{i:08d}", subject_dn=f"CN=churn-{i:08d},OU=Churn,O=Example Bank,C=GB")
            for i in range(first, first + window)]


# ------------------------------------------------------------------ the traffic mix

@dataclass(frozen=True)
class Kind:
    name: str          # outcome class: accepted / rejected / passed
    label: str
    method: str
    path: str
    client_id: str | None = None
    headers: tuple = ()


def basic(client_id: str) -> tuple[str, str]:
    return ("authorization", "Basic " + base64.b64encode(f"{client_id}:s3cret".encode()).decode())


# cert -> the requests its connections cycle through (the fixed proportion of the mix)
MIX: dict[str | None, list[Kind]] = {
    "dn-client": [
        Kind("accepted", "inline dn", "POST", "/token", "demo-client"),
        Kind("accepted", "registry dn", "POST", "/token", "stable-dn"),
        Kind("passed", "unknown client", "POST", "/token", "nobody-registered-this"),
        Kind("passed", "other path, spoofed headers", "GET", "/userinfo", None, tuple(SPOOFED)),
    ],
    "san-uri-client": [Kind("accepted", "registry uri san", "POST", "/token", "stable-uri")],
    "self-signed-1": [Kind("accepted", "registry self-signed", "POST", "/token", "stable-ss")],
    "other-client": [
        Kind("rejected", "wrong cert, inline", "POST", "/token", "demo-client"),
        Kind("rejected", "wrong cert, registry", "POST", "/token", "stable-dn", tuple(SPOOFED)),
        Kind("passed", "client_secret_basic", "POST", "/token", "stable-secret", (basic("stable-secret"),)),
    ],
    None: [
        Kind("rejected", "no cert, registry", "POST", "/token", "stable-uri"),
        Kind("passed", "metadata, no cert", "GET", "/.well-known/oauth-authorization-server"),
    ],
}


@dataclass
class Tally:
    lock: threading.Lock = field(default_factory=threading.Lock)
    by_outcome: Counter = field(default_factory=Counter)
    by_label: Counter = field(default_factory=Counter)
    unexpected: int = 0
    examples: list[str] = field(default_factory=list)

    def add(self, kind: Kind, problem: str | None) -> None:
        with self.lock:
            self.by_label[kind.label] += 1
            if problem is None:
                self.by_outcome[kind.name] += 1
            else:
                self.unexpected += 1
                self.by_outcome["unexpected"] += 1
                if len(self.examples) < 20:
                    self.examples.append(f"{kind.label}: {problem}")

    @property
    def total(self) -> int:
        with self.lock:
            return sum(self.by_outcome.values())


def check(kind: Kind, cert: str | None, status: int, body: bytes) -> str | None:
    """None when the response is what `kind` must get, else what was wrong."""
    try:
        doc = json.loads(body) if body else {}
    except ValueError:
        return f"{status}, body not JSON: {body[:120]!r}"
    if kind.name == "rejected":
        if status != 401 or doc.get("error") != "invalid_client":
            return f"expected 401 invalid_client, got {status} {body[:200]!r}"
        return None
    if status != 200 or "headers" not in doc:
        return f"expected 200 from the AS, got {status} {body[:200]!r}"
    seen = doc["headers"]
    if kind.name == "accepted":
        if seen.get("x-mtls-client-id") != [kind.client_id]:
            return f"x-mtls-client-id at the AS: {seen.get('x-mtls-client-id')}"
        if seen.get("x-mtls-x5t-s256") != [pki.x5t_s256(cert)]:
            return f"x-mtls-x5t-s256 at the AS: {seen.get('x-mtls-x5t-s256')}"
        return None
    for h in ("x-mtls-client-id", "x-mtls-auth-method", "x-mtls-x5t-s256", "client-cert", "client-cert-chain"):
        if h in seen:
            return f"{h} reached the AS on a passed request: {seen[h]}"
    return None


def connection_loop(port: int, cert: str | None, kinds: list[Kind], stop: threading.Event, tally: Tally,
                    offset: int) -> None:
    ctx = client.tls_context(cert, ["http/1.1"])
    conn = http.client.HTTPSConnection("127.0.0.1", port, context=ctx, timeout=15)
    i = offset
    while not stop.is_set():
        kind = kinds[i % len(kinds)]
        i += 1
        headers = {"x-test-id": f"soak-{i}"}
        headers.update(dict(kind.headers))
        body = None
        if kind.method == "POST":
            headers["content-type"] = FORM
            body = client.token_body(kind.client_id)
        try:
            conn.request(kind.method, kind.path, body=body, headers=headers)
            resp = conn.getresponse()
            data = resp.read()
            problem = check(kind, cert, resp.status, data)
        except (OSError, http.client.HTTPException) as e:
            problem = f"{type(e).__name__}: {e}"
            conn.close()
        tally.add(kind, problem)
    conn.close()


# ------------------------------------------------------------------ the run

def registry_bytes(e: envoy_mod.Envoy) -> float | None:
    stats = e.stats()
    found = [v for k, v in stats.items() if k == BYTES_GAUGE or k.endswith("." + BYTES_GAUGE)]
    return sum(found) if found else None


def run(duration: float, copies: int = 2, per_tick: int = 20, window: int = 200, sample_every: float = 5.0,
        warmup: float | None = None, log=print) -> dict:
    envoy_mod.require_wasm()
    pki.ensure_pki()
    upstream = servers.EchoUpstream(record=False)
    registry = servers.DocumentServer()
    tick = 0
    registry.set(REGISTRY_PATH, STABLE + churned(tick, per_tick, window))
    port, admin = envoy_mod.free_port(), envoy_mod.free_port()
    ports = {8443: port, 9901: admin, 9080: upstream.port, 9081: registry.port, 9082: envoy_mod.free_port()}
    e = envoy_mod.Envoy(envoy_mod.render("direct-mtls.yaml", ports, plugin()), "soak", port, admin).start()
    stop = threading.Event()
    tally = Tally()
    threads: list[threading.Thread] = []
    samples: list[dict] = []
    warmup = min(60.0, duration / 3) if warmup is None else warmup
    try:
        envoy_mod.poll(lambda: e.stat("oauth_mtls.registry.clients") >= len(STABLE), timeout=20,
                       what="the first registry load")
        for c in range(copies):
            for j, (cert, kinds) in enumerate(MIX.items()):
                t = threading.Thread(target=connection_loop, args=(port, cert, kinds, stop, tally, c + j),
                                     name=f"soak-{cert}-{c}", daemon=True)
                t.start()
                threads.append(t)
        t0 = time.monotonic()
        next_churn, next_sample = t0 + 1.0, t0
        while True:
            now = time.monotonic()
            if now >= next_sample:
                s = {"t": round(now - t0, 1), "requests": tally.total, "unexpected": tally.unexpected,
                     "rss_kib": e.rss_kib(), "registry_bytes": registry_bytes(e),
                     "registry_clients": e.stat("oauth_mtls.registry.clients"), "tick": tick}
                samples.append(s)
                log(f"soak t={s['t']:>6}s requests={s['requests']} unexpected={s['unexpected']} "
                    f"rss={s['rss_kib']} KiB registry.bytes={s['registry_bytes']} "
                    f"registry.clients={s['registry_clients']:.0f}")
                next_sample += sample_every
            if now - t0 >= duration:
                break
            if now >= next_churn:
                tick += 1
                registry.set(REGISTRY_PATH, STABLE + churned(tick, per_tick, window))
                next_churn += 1.0
            if not e.alive():
                break
            time.sleep(0.05)
        elapsed = time.monotonic() - t0
    finally:
        stop.set()
        for t in threads:
            t.join(20)
        alive = e.alive()
        stats = e.filter_stats() if alive else {}
        e.stop()
        upstream.stop()
        registry.stop()
    after = [s for s in samples if s["t"] >= warmup] or samples[-1:]
    first, last = after[0], samples[-1]

    def growth(key):
        a, b = first[key], last[key]
        return None if a in (None, 0) or b is None else (b - a) / a

    return {
        "duration_s": round(elapsed, 1), "warmup_s": warmup, "envoy_alive": alive,
        "requests": tally.total, "by_outcome": dict(tally.by_outcome), "by_request": dict(tally.by_label),
        "unexpected": tally.unexpected, "unexpected_examples": tally.examples,
        "requests_per_s": round(tally.total / elapsed, 1) if elapsed else 0,
        "registry_versions": tick + 1, "churned_clients_per_refresh": per_tick,
        "registry_fetches": registry.fetch_count(REGISTRY_PATH),
        "rss_kib_start": samples[0]["rss_kib"], "rss_kib_after_warmup": first["rss_kib"],
        "rss_kib_end": last["rss_kib"],
        "rss_growth_after_warmup": growth("rss_kib"),
        "registry_bytes_start": samples[0]["registry_bytes"], "registry_bytes_after_warmup": first["registry_bytes"],
        "registry_bytes_end": last["registry_bytes"], "registry_bytes_growth_after_warmup": growth("registry_bytes"),
        "filter_stats": {k.replace("wasmcustom.", ""): v for k, v in stats.items()},
        "samples": samples, "envoy_dir": str(e.dir),
    }


def verdict(summary: dict) -> list[str]:
    """What is wrong with a soak run (empty: it passed)."""
    bad = []
    if not summary["envoy_alive"]:
        bad.append("Envoy died")
    if summary["unexpected"]:
        bad.append(f"{summary['unexpected']} unexpected responses: {summary['unexpected_examples'][:5]}")
    for outcome in ("accepted", "rejected", "passed"):
        if not summary["by_outcome"].get(outcome):
            bad.append(f"no {outcome} requests")
    g = summary["rss_growth_after_warmup"]
    if g is not None and g >= GROWTH_LIMIT:
        bad.append(f"Envoy RSS grew {g:.1%} after warm-up")
    g = summary["registry_bytes_growth_after_warmup"]
    if g is not None and g >= GROWTH_LIMIT:
        bad.append(f"{BYTES_GAUGE} grew {g:.1%} after warm-up")
    return bad


def print_summary(s: dict, out=print) -> None:
    out("---- soak summary")
    out(f"duration {s['duration_s']} s (warm-up {s['warmup_s']} s), Envoy alive: {s['envoy_alive']}")
    out(f"requests {s['requests']} ({s['requests_per_s']}/s) by outcome {s['by_outcome']}")
    out(f"by request: {s['by_request']}")
    out(f"unexpected {s['unexpected']} {s['unexpected_examples'][:5]}")
    out(f"registry versions {s['registry_versions']} ({s['churned_clients_per_refresh']} clients added and removed "
        f"each), fetches {s['registry_fetches']}")
    out(f"Envoy RSS KiB start {s['rss_kib_start']} after warm-up {s['rss_kib_after_warmup']} end {s['rss_kib_end']}"
        f" (growth after warm-up {_pct(s['rss_growth_after_warmup'])})")
    out(f"{BYTES_GAUGE} start {s['registry_bytes_start']} after warm-up {s['registry_bytes_after_warmup']} "
        f"end {s['registry_bytes_end']} (growth after warm-up {_pct(s['registry_bytes_growth_after_warmup'])})")
    out(f"filter stats at the end: {s['filter_stats']}")
    out(f"Envoy log and config: {s['envoy_dir']}")


def _pct(g) -> str:
    return "n/a" if g is None else f"{g:+.2%}"


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--duration", type=float, default=600, help="seconds of load (default 600)")
    ap.add_argument("--copies", type=int, default=2, help="connections per certificate (default 2)")
    ap.add_argument("--churn", type=int, default=20, help="registry clients added and removed per refresh")
    ap.add_argument("--window", type=int, default=200, help="churned clients in each registry version")
    ap.add_argument("--sample-every", type=float, default=10.0, help="seconds between RSS/gauge samples")
    ap.add_argument("--json", help="also write the summary (with all samples) to this file")
    a = ap.parse_args()
    s = run(a.duration, a.copies, a.churn, a.window, a.sample_every)
    print_summary(s)
    if a.json:
        pathlib.Path(a.json).write_text(json.dumps(s, indent=1))
    bad = verdict(s)
    print("SOAK " + ("PASSED" if not bad else "FAILED: " + "; ".join(bad)))
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
