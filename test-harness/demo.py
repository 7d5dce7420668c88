"""`make demo`: the shipped envoy/direct-mtls.yaml in action, unattended.

Builds the test PKI (build/pki), starts an echo "authorization server" on 127.0.0.1:9080 and a client
registry on 127.0.0.1:9081, runs Envoy with envoy/direct-mtls.yaml from the repository root, then sends
  1. a token request from demo-client with its registered certificate  -> expected 200, annotated at the AS
  2. a token request for demo-client with another client's certificate -> expected 401 invalid_client
printing the curl commands, the responses and what the AS received. Exits 0 only if both outcomes are as
expected.
"""
from __future__ import annotations

import json
import os
import pathlib
import socket
import subprocess
import sys
import time
import urllib.request

HARNESS = pathlib.Path(__file__).resolve().parent
REPO = HARNESS.parent
# The shipped config names build/pki/... relative to the repository root: the PKI must be there.
os.environ["OAUTH_MTLS_BUILD"] = str(REPO / "build")
sys.path.insert(0, str(HARNESS))

import client  # noqa: E402
import envoy as envoy_mod  # noqa: E402
import pki  # noqa: E402
import servers  # noqa: E402

CONFIG = "envoy/direct-mtls.yaml"
PORTS = {"listener": 8443, "AS": 9080, "registry": 9081, "jwks": 9082, "admin": 9901}
SHOWN_HEADERS = ("x-mtls-client-id", "x-mtls-auth-method", "x-mtls-x5t-s256", "client-cert")


def banner(text: str) -> None:
    print(f"\n=== {text} ===", flush=True)


def port_free(port: int) -> bool:
    with socket.socket() as s:
        try:
            s.bind(("127.0.0.1", port))
            return True
        except OSError:
            return False


def wait_ready(proc: subprocess.Popen, log: pathlib.Path, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"Envoy exited with {proc.returncode}; see {log}:\n{log.read_text()[-3000:]}")
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{PORTS['admin']}/ready", timeout=1) as r:
                if r.status == 200:
                    with socket.create_connection(("127.0.0.1", PORTS["listener"]), timeout=1):
                        return
        except OSError:
            pass
        time.sleep(0.2)
    raise RuntimeError(f"Envoy not ready after {timeout}s; see {log}")


def main() -> int:
    wasm = REPO / envoy_mod.SHIPPED_WASM
    if not wasm.is_file():
        print(f"missing {wasm}: run `make build` first", file=sys.stderr)
        return 2
    busy = [f"{name} {p}" for name, p in PORTS.items() if not port_free(p)]
    if busy:
        print(f"ports in use (the demo needs them): {', '.join(busy)}", file=sys.stderr)
        return 2

    banner("test PKI")
    print(pki.ensure_pki())

    upstream = servers.EchoUpstream(PORTS["AS"])
    registry = servers.DocumentServer(PORTS["registry"])
    registry.set("/clients", [{"client_id": "registry-client", "token_endpoint_auth_method": "tls_client_auth",
                               "tls_client_auth_san_uri": "spiffe://example.org/client"}])
    jwks = servers.DocumentServer(PORTS["jwks"])
    print(f"echo AS on 127.0.0.1:{upstream.port}, registry on 127.0.0.1:{registry.port}")

    log_dir = REPO / "build" / "demo"
    log_dir.mkdir(parents=True, exist_ok=True)
    log = log_dir / "envoy.log"
    cmd = envoy_mod.envoy_command() + ["-c", CONFIG, "--concurrency", "1", "--use-dynamic-base-id",
                                       "-l", "info", "--log-path", str(log)]
    banner("envoy")
    print("$ (cd " + str(REPO) + " && " + " ".join(cmd) + ")")
    with open(log_dir / "envoy.out", "wb") as out:
        proc = subprocess.Popen(cmd, cwd=REPO, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
    ok = True
    try:
        wait_ready(proc, log)
        port = PORTS["listener"]

        banner("1. demo-client presents its registered certificate (dn-client)")
        r = client.token_request(port, "dn-client", "demo-client", print_command=True)
        print(f"HTTP {r.status}")
        seen = upstream.find(r.test_id)
        if r.status == 200 and len(seen) == 1:
            print("headers the AS received:")
            for h in SHOWN_HEADERS:
                v = seen[0].header(h) or "(absent)"
                print(f"  {h}: {v if len(v) < 90 else v[:87] + '...'}")
            expected = pki.x5t_s256("dn-client")
            if seen[0].header("x-mtls-client-id") != "demo-client" or seen[0].header("x-mtls-x5t-s256") != expected:
                print(f"UNEXPECTED: annotations do not describe demo-client / x5t#S256 {expected}")
                ok = False
        else:
            print(f"UNEXPECTED: expected 200 at the AS, got {r.status}: {r.text}")
            ok = False

        banner("2. someone presents other-client's (valid, trusted) certificate as demo-client")
        r = client.token_request(port, "other-client", "demo-client", print_command=True)
        print(f"HTTP {r.status}")
        print(r.text)
        try:
            doc = r.json()
        except ValueError:
            doc = {}
        if r.status != 401 or doc.get("error") != "invalid_client" or upstream.find(r.test_id):
            print("UNEXPECTED: expected 401 invalid_client, and nothing at the AS")
            ok = False
        else:
            print("the AS never saw this request")
    except Exception as e:  # noqa: BLE001 - report and fail
        print(f"demo failed: {e}", file=sys.stderr)
        ok = False
    finally:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
        for s in (upstream, registry, jwks):
            s.stop()
    banner("result")
    print("demo OK" if ok else f"demo FAILED (Envoy log: {log})")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
