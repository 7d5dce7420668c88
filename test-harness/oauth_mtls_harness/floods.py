"""Unauthenticated floods aimed at a worker's wasm VM (issue 10), and a watch that proves whether it survives.

    test-harness/.venv/bin/python -m oauth_mtls_harness.floods --attack certificates --duration 600
    test-harness/.venv/bin/python -m oauth_mtls_harness.floods --attack client-ids --duration 600  # make soak-floods

`certificates`: every TLS connection presents a new self-signed certificate of ~93 KB (31,000 one-letter DNS
SANs; one EC P-256 key, a fresh serial each, validly signed) and sends one token request, refused (401: the
chain is not validated; envoy/direct-mtls.yaml lets unverified chains through for self_signed_tls_client_auth).
Each certificate is decoded and cached by the worker that took the connection.

`client-ids`: keep-alive connections without a certificate send token requests each naming a new random
client_id of 1,000,000 bytes (`max_body_bytes` 1 MiB, a registry configured), refused as unknown (401).
Each unknown id is looked up in the registry and cached by the worker.

While a flood runs, `watch` samples every second: a legitimate client (dn-client, registered as demo-client)
on new connections must get 200 with the filter's annotations at the AS; Envoy's RSS; trap lines in Envoy's
log (TRAP_MARKERS). `verdict` fails a run on any legitimate failure, any trap line, any flood answer but 401
(503: a failed VM), fewer than MIN_REFUSED_PER_S refusals, RSS above (1 + RSS_GROWTH) x the post-warm-up value
+ RSS_ALLOWANCE_KIB, or Envoy's log growing by more than LOG_BYTES_PER_REQUEST per flood request (a run stops
once it grew by MAX_LOG_BYTES).
"""
from __future__ import annotations

import argparse
import base64
import concurrent.futures
import itertools
import json
import os
import pathlib
import socket
import ssl
import string
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from dataclasses import dataclass, field

from oauth_mtls_harness import client, pki, servers
from oauth_mtls_harness import envoy as envoy_mod
from oauth_mtls_harness.checks import tls_client

ATTACKS = ("certificates", "client-ids")
TRAP_MARKERS = ("panicked", "unreachable", "Function: proxy_on_")
# Envoy's RSS after WARMUP_S may grow by RSS_GROWTH plus RSS_ALLOWANCE_KIB at most. Measured on 2 cores with the
# same floods, Envoy without the filter (certificates) and the filter without a registry (client-ids: nothing
# cached) stayed within 0.3 MB of their post-warm-up RSS (94 and 141 MB); the filter before the fix grew by
# ~1 MB per flood request (to 2.1 GB, then the VM trapped). The warm-up must outlast the time the flood takes
# to fill the filter's caches to their budget (~20 MB/s per worker here).
WARMUP_S = 15.0
RSS_GROWTH = 0.10
RSS_ALLOWANCE_KIB = 32 * 1024
# A flood that got fewer refusals (401) than this per second proves nothing.
MIN_REFUSED_PER_S = 10
# Envoy's log may grow by this much per flood request on average (a rejection is one line of a few hundred
# bytes); a run stops once the log grew by MAX_LOG_BYTES, to keep the disk from filling.
LOG_BYTES_PER_REQUEST = 2048
MAX_LOG_BYTES = 4 << 30

# The legitimate client: envoy/direct-mtls.yaml registers demo-client inline by dn-client's subject DN.
LEGIT_CERT, LEGIT_CLIENT_ID = "dn-client", "demo-client"

FLOOD_CERT_SANS = 31_000      # one-letter DNS names, 3 bytes of DER each: a ~93 KB certificate
FLOOD_CERT_POOL = 3000        # distinct certificates; a longer flood goes round them again
FLOOD_CLIENT_ID_BYTES = 1_000_000
REGISTRY_PATH = "/floods/clients.json"


def plugin(attack: str) -> dict:
    """The plugin JSON a flood runs against: as shipped in envoy/direct-mtls.yaml; for `client-ids` with
    1 MiB bodies, unknown clients rejected, and a registry polled every second."""
    p = envoy_mod.plugin_json(envoy_mod.load("direct-mtls.yaml"))
    if attack == "client-ids":
        p.update({
            "max_body_bytes": 1048576,
            "unknown_client": "reject",
            "registry": {"cluster": "registry", "authority": "registry.floods", "path": REGISTRY_PATH,
                         "refresh_seconds": 1, "timeout_ms": 1000, "max_stale_seconds": 300},
        })
    return p


REGISTRY_CLIENTS = [tls_client("registered-dn", subject_dn=pki.DN_CLIENT_RFC4514)]


# ------------------------------------------------------------------ the certificate pool

def _der_tlv(tag: int, content: bytes) -> bytes:
    return bytes([tag]) + pki._der_encode_len(len(content)) + content


class CertificatePool:
    """FLOOD_CERT_POOL self-signed certificates that differ only in their serial (and signature), kept in
    the build directory as one template, one key and their signatures (a few hundred KB, not 280 MB)."""

    SERIAL = bytes.fromhex("7e00112233445566778899aabbccddee")  # the template's; pem(i) puts i in its place

    def __init__(self, size: int = FLOOD_CERT_POOL, directory: pathlib.Path | None = None):
        self.dir = directory or pki.build_dir() / "floods" / f"certificates-{FLOOD_CERT_SANS}"
        self.dir.mkdir(parents=True, exist_ok=True)
        self.key = self.dir / "key.pem"
        if not (self.dir / "template.der").is_file():
            self._make_template()
        der = (self.dir / "template.der").read_bytes()
        _, tbs_at = pki._der_len(der, 0)
        tbs_len, tbs_content = pki._der_len(der, tbs_at)
        self.tbs = der[tbs_at:tbs_content + tbs_len]
        alg_len, alg_content = pki._der_len(der, tbs_content + tbs_len)
        self.alg = der[tbs_content + tbs_len:alg_content + alg_len]
        assert self.tbs.count(self.SERIAL) == 1
        self.signatures = self._signatures(size)

    def __len__(self) -> int:
        return len(self.signatures)

    def _make_template(self) -> None:
        subprocess.run(["openssl", "genpkey", "-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-256",
                        "-out", str(self.key)], check=True, capture_output=True)
        names = ",".join("DNS:" + string.ascii_lowercase[i % 26] for i in range(FLOOD_CERT_SANS))
        cnf = self.dir / "template.cnf"
        cnf.write_text("[req]\ndistinguished_name=dn\nx509_extensions=v3\n[dn]\n[v3]\n"
                       "basicConstraints=critical,CA:FALSE\nextendedKeyUsage=clientAuth\n"
                       f"subjectAltName={names}\n")
        subprocess.run(["openssl", "req", "-new", "-x509", "-key", str(self.key), "-subj", "/O=Flood/CN=flood",
                        "-days", "3650", "-sha256", "-set_serial", "0x" + self.SERIAL.hex(), "-config", str(cnf),
                        "-extensions", "v3", "-outform", "DER", "-out", str(self.dir / "template.der")],
                       check=True, capture_output=True)

    def tbs_of(self, i: int) -> bytes:
        return self.tbs.replace(self.SERIAL, self.SERIAL[:1] + i.to_bytes(len(self.SERIAL) - 1, "big"))

    def _signatures(self, size: int) -> list[bytes]:
        """The signatures of certificates 0..size-1: read from signatures.bin (length-prefixed), the missing
        ones made with `openssl dgst` (~8 ms each, two at a time) and appended."""
        path = self.dir / "signatures.bin"
        data = path.read_bytes() if path.is_file() else b""
        sigs, at = [], 0
        while at < len(data) and len(sigs) < size:
            n = data[at]
            sigs.append(data[at + 1:at + 1 + n])
            at += 1 + n

        def sign(i: int) -> bytes:
            return subprocess.run(["openssl", "dgst", "-sha256", "-sign", str(self.key)], input=self.tbs_of(i),
                                  capture_output=True, check=True).stdout

        if len(sigs) < size:
            with concurrent.futures.ThreadPoolExecutor(2) as ex:
                new = list(ex.map(sign, range(len(sigs), size)))
            with open(path, "ab") as f:
                f.write(b"".join(bytes([len(s)]) + s for s in new))
            sigs += new
        return sigs

    def der(self, i: int) -> bytes:
        i %= len(self)
        return _der_tlv(0x30, self.tbs_of(i) + self.alg + _der_tlv(0x03, b"\x00" + self.signatures[i]))

    def pem(self, i: int) -> bytes:
        b64 = base64.encodebytes(self.der(i))
        return b"-----BEGIN CERTIFICATE-----\n" + b64 + b"-----END CERTIFICATE-----\n"


# ------------------------------------------------------------------ floods

@dataclass
class Tally:
    """What a flood sent and got back, by status (or error name)."""
    lock: threading.Lock = field(default_factory=threading.Lock)
    statuses: Counter = field(default_factory=Counter)
    connections: int = 0
    requests: int = 0

    def add(self, outcome: str | int, new_connection: bool) -> None:
        with self.lock:
            self.statuses[outcome] += 1
            self.requests += 1
            self.connections += new_connection

    def snapshot(self) -> dict:
        with self.lock:
            return {"connections": self.connections, "requests": self.requests,
                    "statuses": {str(k): v for k, v in self.statuses.items()}}


def _token_request(port: int, body: bytes, close: bool) -> bytes:
    head = (f"POST /token HTTP/1.1\r\nhost: localhost:{port}\r\ncontent-type: {client.FORM}\r\n"
            f"content-length: {len(body)}\r\n" + ("connection: close\r\n" if close else "") + "\r\n")
    return head.encode() + body


def _flood_context(cert_file: str | None = None, key_file: str | None = None) -> ssl.SSLContext:
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE   # the attacker does not care who answers
    ctx.set_alpn_protocols(["http/1.1"])
    if cert_file:
        ctx.load_cert_chain(cert_file, key_file)
    return ctx


def certificate_flood(port: int, stop: threading.Event, tally: Tally, pool: CertificatePool,
                      threads: int = 4, max_connections: int = 10**7) -> list[threading.Thread]:
    """`threads` loops, each opening TLS connections that present the pool's next certificate and send one
    token request (for demo-client: refused, the chain is not validated). Returns the started threads."""
    counter = itertools.count()
    body = f"grant_type=client_credentials&client_id={LEGIT_CLIENT_ID}".encode()

    def loop() -> None:
        with tempfile.NamedTemporaryFile(prefix="flood-cert.", suffix=".pem") as cert_file:
            while not stop.is_set():
                i = next(counter)
                if i >= max_connections:
                    return
                cert_file.seek(0)
                cert_file.write(pool.pem(i))
                cert_file.truncate()
                cert_file.flush()
                try:
                    ctx = _flood_context(cert_file.name, str(pool.key))
                    with socket.create_connection(("127.0.0.1", port), timeout=10) as raw, \
                            ctx.wrap_socket(raw, server_hostname="localhost") as s:
                        s.sendall(_token_request(port, body, close=True))
                        outcome: int | str = client.read_http1_response(s).status
                except (OSError, ValueError, RuntimeError) as e:  # RuntimeError: no HTTP response
                    outcome = type(e).__name__
                tally.add(outcome, new_connection=True)

    return _start_threads("flood-certificates", loop, threads)


def random_client_id(size: int = FLOOD_CLIENT_ID_BYTES) -> bytes:
    """`size` random base64url characters (form-safe as they are)."""
    return base64.urlsafe_b64encode(os.urandom(size * 3 // 4 + 3))[:size]


def client_id_flood(port: int, stop: threading.Event, tally: Tally, connections: int = 2,
                    requests_per_connection: int = 100, id_bytes: int = FLOOD_CLIENT_ID_BYTES,
                    max_requests: int = 10**7) -> list[threading.Thread]:
    """`connections` keep-alive TLS connections without a certificate, each sending token requests that
    name a new random client_id of `id_bytes` (refused: unknown client). Each connection is replaced after
    `requests_per_connection` requests (or when closed), so that every worker gets its share of the flood.
    Returns the started threads."""
    counter = itertools.count()
    ctx = _flood_context()

    def loop() -> None:
        s, sent = None, 0
        while not stop.is_set() and next(counter) < max_requests:
            body = b"grant_type=client_credentials&client_id=" + random_client_id(id_bytes)
            new = s is None
            try:
                if s is None:
                    s, sent = ctx.wrap_socket(socket.create_connection(("127.0.0.1", port), timeout=10),
                                              server_hostname="localhost"), 0
                s.sendall(_token_request(port, body, close=False))
                sent += 1
                outcome: int | str = client.read_http1_response(s).status
            except (OSError, ValueError, RuntimeError) as e:  # RuntimeError: no HTTP response
                outcome = type(e).__name__
                sent = requests_per_connection
            tally.add(outcome, new_connection=new)
            if s is not None and sent >= requests_per_connection:
                s.close()
                s = None
        if s is not None:
            s.close()

    return _start_threads("flood-client-ids", loop, connections)


def _start_threads(name: str, target, n: int) -> list[threading.Thread]:
    threads = [threading.Thread(target=target, name=f"{name}-{i}", daemon=True) for i in range(n)]
    for t in threads:
        t.start()
    return threads


FLOODS = {"certificates": certificate_flood, "client-ids": client_id_flood}


# ------------------------------------------------------------------ the legitimate client and the log

def legit_token_request(port: int, timeout: float = 10) -> str | None:
    """One token request by the legitimate client on a new connection: None when it was authenticated
    (200 from the AS, which saw x-mtls-client-id demo-client and dn-client's x5t#S256), else what was wrong."""
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.load_verify_locations(str(pki.pki_dir() / "ca.pem"))
    ctx.load_cert_chain(str(pki.cert_path(LEGIT_CERT)), str(pki.key_path(LEGIT_CERT)))
    body = f"grant_type=client_credentials&client_id={LEGIT_CLIENT_ID}".encode()
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=timeout) as raw, \
                ctx.wrap_socket(raw, server_hostname="localhost") as s:
            s.sendall(_token_request(port, body, close=True))
            r = client.read_http1_response(s)
    except (OSError, RuntimeError) as e:  # RuntimeError: no HTTP response
        return f"{type(e).__name__}: {e}"
    payload = r.body
    if r.status != 200:
        return f"status {r.status}: {payload[:200]!r}"
    try:
        seen = json.loads(payload)["headers"]
    except (ValueError, KeyError):
        return f"200 but not from the AS: {payload[:200]!r}"
    if seen.get("x-mtls-client-id") != [LEGIT_CLIENT_ID] or \
            seen.get("x-mtls-x5t-s256") != [pki.x5t_s256(LEGIT_CERT)]:
        return f"200 without the annotations: {seen.get('x-mtls-client-id')} {seen.get('x-mtls-x5t-s256')}"
    return None


class LogScan:
    """Reads what Envoy appended to its logs since the last call and keeps the lines with TRAP_MARKERS."""

    def __init__(self, e: envoy_mod.Envoy):
        self.offsets = dict.fromkeys((e.out_path, e.log_path), 0)
        self.traps: list[str] = []
        self.bytes_read = 0

    def scan(self) -> int:
        """Trap lines found so far. Only complete lines are read: a line being written is read next time."""
        for path, offset in self.offsets.items():
            if not path.exists():
                continue
            with open(path, "rb") as f:
                f.seek(offset)
                data = f.read()
            data = data[:data.rfind(b"\n") + 1]
            self.offsets[path] += len(data)
            self.bytes_read += len(data)
            starts = set()   # of the lines with a marker (a line may have several)
            for marker in TRAP_MARKERS:
                at = data.find(marker.encode())
                while at >= 0:
                    starts.add(data.rfind(b"\n", 0, at) + 1)
                    at = data.find(marker.encode(), data.find(b"\n", at))
            for start in sorted(starts):
                self.traps.append(data[start:min(data.find(b"\n", start), start + 300)].decode("utf-8", "replace"))
        return len(self.traps)


# ------------------------------------------------------------------ the watch

def watch(e: envoy_mod.Envoy, attack: str, duration: float, *, warmup: float = WARMUP_S, sample_every: float = 1.0,
          legit_per_sample: int = 2, stop_after_failure: float | None = 10.0, log=print, **flood_options) -> dict:
    """Run `attack` against `e` for `duration` seconds while sampling the legitimate client, Envoy's RSS and
    its log every `sample_every` s. With `stop_after_failure`, stop that many seconds after the first trap
    line, 503 or legitimate failure (the verdict is known by then). A summary dict (see `verdict`)."""
    stop = threading.Event()
    tally = Tally()
    logs = LogScan(e)
    samples: list[dict] = []
    legit_ok, legit_failures = 0, []
    first_failure_t = None
    rss_start = e.rss_kib()
    threads = FLOODS[attack](e.port, stop, tally, **flood_options)
    t0 = time.monotonic()
    try:
        while True:
            t = time.monotonic() - t0
            for _ in range(legit_per_sample):
                problem = legit_token_request(e.port)
                if problem is None:
                    legit_ok += 1
                else:
                    legit_failures.append(f"t={t:.0f}s {problem}")
            flood = tally.snapshot()
            s = {"t": round(t, 1), "rss_kib": e.rss_kib() if e.alive() else 0, "legit_ok": legit_ok,
                 "legit_failed": len(legit_failures), "traps": logs.scan(), **flood}
            samples.append(s)
            log(f"{attack} t={s['t']:>5}s rss={s['rss_kib']} KiB flood connections={s['connections']} "
                f"requests={s['requests']} {s['statuses']} legit ok={legit_ok} failed={len(legit_failures)} "
                f"trap lines={s['traps']}")
            failed = s["traps"] or legit_failures or flood["statuses"].get("503") or not e.alive()
            if failed and first_failure_t is None:
                first_failure_t = s["t"]
            if logs.bytes_read > MAX_LOG_BYTES:
                log(f"{attack}: Envoy's log grew by {logs.bytes_read} bytes: stopping (disk)")
                break
            if t >= duration or not e.alive() or (
                    stop_after_failure is not None and first_failure_t is not None
                    and t - first_failure_t >= stop_after_failure):
                break
            time.sleep(max(0.0, sample_every - (time.monotonic() - t0 - t)))
    finally:
        stop.set()
        for th in threads:
            th.join(20)
    elapsed = time.monotonic() - t0
    flood = tally.snapshot()
    after = [s for s in samples if s["t"] >= warmup and s["rss_kib"]]
    base = after[0]["rss_kib"] if after else None
    return {
        "attack": attack, "duration_s": round(elapsed, 1), "warmup_s": warmup, "envoy_alive": e.alive(),
        "flood": flood, "flood_connections_per_s": round(flood["connections"] / elapsed, 1),
        "flood_requests_per_s": round(flood["requests"] / elapsed, 1),
        "legit_ok": legit_ok, "legit_failed": len(legit_failures), "legit_failures": legit_failures[:10],
        "first_failure_s": first_failure_t, "trap_lines": len(logs.traps), "trap_examples": logs.traps[:5],
        "envoy_log_bytes": logs.bytes_read,
        "rss_kib_start": rss_start, "rss_kib_after_warmup": base,
        "rss_kib_max_after_warmup": max((s["rss_kib"] for s in after), default=None),
        "rss_kib_bound": None if base is None else int(base * (1 + RSS_GROWTH) + RSS_ALLOWANCE_KIB),
        "samples": samples, "envoy_dir": str(e.dir),
    }


def verdict(summary: dict) -> list[str]:
    """What is wrong with a flood run (empty: the VM survived it)."""
    bad = []
    requests = summary["flood"]["requests"]
    if not summary["envoy_alive"]:
        bad.append("Envoy died")
    if summary["trap_lines"]:
        bad.append(f"{summary['trap_lines']} wasm trap lines in Envoy's log, e.g. {summary['trap_examples'][:2]}")
    if summary["legit_failed"] or not summary["legit_ok"]:
        bad.append(f"legitimate client: {summary['legit_ok']} authenticated, {summary['legit_failed']} not: "
                   f"{summary['legit_failures'][:3]}")
    if summary["envoy_log_bytes"] > LOG_BYTES_PER_REQUEST * max(summary["flood"]["requests"], 1):
        bad.append(f"Envoy's log grew by {summary['envoy_log_bytes']} bytes for {summary['flood']['requests']} "
                   f"flood requests (more than {LOG_BYTES_PER_REQUEST} bytes each)")
    statuses = summary["flood"]["statuses"]
    if statuses.get("401", 0) < MIN_REFUSED_PER_S * summary["duration_s"]:
        bad.append(f"flood too small to prove anything: {statuses.get('401', 0)} refused (401) requests")
    unexpected = {k: v for k, v in statuses.items() if k != "401" and (k.isdigit() or v > requests // 100)}
    if unexpected:
        bad.append(f"flood requests answered other than 401 (503: a VM failed): {unexpected}")
    if summary["rss_kib_bound"] is None:
        bad.append("no RSS sample after warm-up")
    elif summary["rss_kib_max_after_warmup"] > summary["rss_kib_bound"]:
        bad.append(f"Envoy RSS reached {summary['rss_kib_max_after_warmup']} KiB, above the bound "
                   f"{summary['rss_kib_bound']} KiB ({summary['rss_kib_after_warmup']} KiB after warm-up "
                   f"+ {RSS_GROWTH:.0%} + {RSS_ALLOWANCE_KIB // 1024} MiB)")
    return bad


def print_summary(s: dict, out=print) -> None:
    out(f"---- flood summary: {s['attack']}")
    out(f"duration {s['duration_s']} s (warm-up {s['warmup_s']} s), Envoy alive: {s['envoy_alive']}")
    out(f"flood: {s['flood']['connections']} connections, {s['flood']['requests']} requests "
        f"({s['flood_connections_per_s']} connections/s, {s['flood_requests_per_s']} requests/s), "
        f"responses {s['flood']['statuses']}")
    out(f"legitimate client: {s['legit_ok']} authenticated, {s['legit_failed']} not {s['legit_failures'][:3]}")
    out(f"first failure at {s['first_failure_s']} s; trap lines {s['trap_lines']} {s['trap_examples'][:2]}")
    out(f"Envoy RSS KiB start {s['rss_kib_start']}, after warm-up {s['rss_kib_after_warmup']}, max after warm-up "
        f"{s['rss_kib_max_after_warmup']} (bound {s['rss_kib_bound']})")
    out(f"Envoy log: {s['envoy_log_bytes']} bytes written during the flood; log and config in {s['envoy_dir']}")


# ------------------------------------------------------------------ standalone

def run(attack: str, duration: float, log=print, **options) -> dict:
    """The whole soak outside pytest: the echo AS, the registry, an Envoy (envoy/direct-mtls.yaml with
    plugin(attack), --concurrency 2), the flood under `watch` (not stopped early), then everything stopped."""
    envoy_mod.require_wasm()
    pki.ensure_pki()
    pool = CertificatePool() if attack == "certificates" else None
    upstream = servers.EchoUpstream(record=False)
    registry = servers.DocumentServer()
    registry.set(REGISTRY_PATH, REGISTRY_CLIENTS)
    registry.set("/clients", [])   # the path envoy/direct-mtls.yaml polls
    port, admin = envoy_mod.free_port(), envoy_mod.free_port()
    ports = {8443: port, 9901: admin, 9080: upstream.port, 9081: registry.port, 9082: envoy_mod.free_port()}
    e = envoy_mod.Envoy(envoy_mod.render("direct-mtls.yaml", ports, plugin(attack)), f"flood-{attack}", port, admin)
    try:
        e.start()
        if attack == "client-ids":
            envoy_mod.poll(lambda: e.stat("oauth_mtls.registry.clients") >= 1, timeout=20, what="the registry load")
            options.setdefault("connections", 2)
        else:
            options.update(pool=pool)
        return watch(e, attack, duration, stop_after_failure=None, log=log, **options)
    finally:
        e.stop()
        upstream.stop()
        registry.stop()


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--attack", choices=ATTACKS, required=True)
    ap.add_argument("--duration", type=float, default=600, help="seconds of flood (default 600)")
    ap.add_argument("--json", help="also write the summary (with all samples) to this file")
    a = ap.parse_args()
    s = run(a.attack, a.duration)
    print_summary(s)
    if a.json:
        pathlib.Path(a.json).write_text(json.dumps(s, indent=1))
    bad = verdict(s)
    print(f"FLOOD {a.attack} " + ("PASSED" if not bad else "FAILED: " + "; ".join(bad)))
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
