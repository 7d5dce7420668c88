"""`make demo`: the full RFC 8705 flow of envoy/as-resources.yaml, unattended.

Builds the test PKI (build/pki), starts the real authorization server (node-oidc-provider,
test-harness/as/server.mjs) on 127.0.0.1:9080 with its client registry on 127.0.0.1:9081, an echo "API" on
127.0.0.1:9090, and Envoy with envoy/as-resources.yaml from the repository root (listener 8443), then:
  1. a real client (openid-client) authenticates as demo-client with its certificate (tls_client_auth) and
     obtains an access token bound to that certificate            -> expected: cnf."x5t#S256" = its thumbprint
  2. it calls the protected API with the token and the same certificate        -> expected 200
  3. the same token is replayed with another valid certificate                  -> expected 401 invalid_token
  4. a token request for demo-client with that other certificate                -> expected 401 invalid_client,
     and the AS never sees it
printing the commands and results. Exits 0 only if every outcome is as expected.
"""
from __future__ import annotations

import json
import os
import pathlib
import shlex
import socket
import subprocess
import sys
import time
import urllib.request

from oauth_mtls_harness import REPO, client, pki, servers
from oauth_mtls_harness import envoy as envoy_mod

# The shipped config names build/pki/... relative to the repository root: the PKI must be there.
os.environ["OAUTH_MTLS_BUILD"] = str(REPO / "build")

CONFIG = "envoy/as-resources.yaml"
PORTS = {"listener": 8443, "AS": 9080, "AS registry": 9081, "API": 9090, "admin": 9901}
ISSUER = f"https://localhost:{PORTS['listener']}"
CLIENTS = [{
    "client_id": "demo-client", "token_endpoint_auth_method": "tls_client_auth",
    "tls_client_auth_subject_dn": pki.DN_CLIENT_RFC4514, "tls_client_certificate_bound_access_tokens": True,
    "grant_types": ["client_credentials"], "response_types": [], "redirect_uris": [],
}]


def banner(text: str) -> None:
    print(f"\n=== {text} ===", flush=True)


def short(value: str, n: int = 60) -> str:
    return value if len(value) <= n else value[: n - 3] + "..."


def port_free(port: int) -> bool:
    with socket.socket() as s:
        try:
            s.bind(("127.0.0.1", port))
            return True
        except OSError:
            return False


def admin_stat(name: str) -> float:
    with urllib.request.urlopen(f"http://127.0.0.1:{PORTS['admin']}/stats?format=json", timeout=2) as r:
        doc = json.loads(r.read())
    return sum(s.get("value", 0) for s in doc.get("stats", []) if s.get("name", "").endswith(name))


def wait_ready(proc: subprocess.Popen, log: pathlib.Path, timeout: float = 60) -> None:
    """Envoy ready, listening, and the filter has loaded the AS's clients from the registry."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"Envoy exited with {proc.returncode}; see {log}:\n{log.read_text()[-3000:]}")
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{PORTS['admin']}/ready", timeout=1) as r:
                if r.status == 200:
                    with socket.create_connection(("127.0.0.1", PORTS["listener"]), timeout=1):
                        if admin_stat("oauth_mtls.registry.clients") >= len(CLIENTS):
                            return
        except OSError:
            pass
        time.sleep(0.2)
    raise RuntimeError(f"Envoy not ready (or registry not loaded) after {timeout}s; see {log}")


def show_node(result: dict) -> None:
    cmd = result["command"]
    # the x-test-id is harness bookkeeping; keep the command readable
    print("$ " + cmd.replace(f" --test-id {result['test_id']}", "").replace(str(REPO) + "/", ""))


def show_api_call(cert: str, path: str) -> None:
    d = pki.pki_dir()
    parts = ["curl", "-sS", "--cacert", str(d / "ca.pem"), "--cert", str(d / f"{cert}.pem"),
             "--key", str(d / f"{cert}.key"), "-H", "authorization: Bearer $TOKEN",
             f"https://localhost:{PORTS['listener']}{path}"]
    print("$ " + " ".join(shlex.quote(p) if "$TOKEN" not in p else f'"{p}"' for p in parts))


def main() -> int:
    wasm = REPO / envoy_mod.SHIPPED_WASM
    if not wasm.is_file():
        print(f"missing {wasm}: run `make build` first", file=sys.stderr)
        return 2
    try:
        servers.require_node_modules()
    except servers.NodeMissing as e:
        print(str(e), file=sys.stderr)
        return 2
    busy = [f"{name} {p}" for name, p in PORTS.items() if not port_free(p)]
    if busy:
        print(f"ports in use (the demo needs them): {', '.join(busy)}", file=sys.stderr)
        return 2

    banner("test PKI")
    print(pki.ensure_pki())

    log_dir = REPO / "build" / "demo"
    log_dir.mkdir(parents=True, exist_ok=True)
    api = servers.EchoUpstream(PORTS["API"])
    oidc = servers.OidcProvider(ISSUER, PORTS["AS"], PORTS["AS registry"], CLIENTS, log_dir, name="demo-as")
    banner("authorization server (node-oidc-provider)")
    oidc.start()
    print("$ " + " ".join(shlex.quote(c) for c in oidc.cmd).replace(str(REPO) + "/", ""))
    print(f"issuer {ISSUER}; registrations (GET http://127.0.0.1:{PORTS['AS registry']}/registry/clients):")
    print("  " + json.dumps(oidc.registry_document()))

    log = log_dir / "envoy.log"
    cmd = envoy_mod.envoy_command() + ["-c", CONFIG, "--concurrency", "1", "--use-dynamic-base-id",
                                       "-l", "info", "--log-path", str(log)]
    banner("envoy (jwt_authn + oauth-mtls filter)")
    print("$ (cd " + str(REPO) + " && " + " ".join(cmd) + ")")
    with open(log_dir / "envoy.out", "wb") as out:
        proc = subprocess.Popen(cmd, cwd=REPO, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
    ok = True

    def expect(cond: bool, what: str) -> None:
        nonlocal ok
        print(("  ok: " if cond else "  UNEXPECTED: ") + what)
        ok = ok and cond

    try:
        wait_ready(proc, log)
        port = PORTS["listener"]

        banner("1. demo-client gets an access token over mTLS with its certificate (dn-client)")
        r = client.openid_client("client-credentials", issuer=ISSUER, cert="dn-client", client_id="demo-client")
        show_node(r)
        if not r.get("ok"):
            raise RuntimeError(f"no token: {json.dumps(r.get('error'))}")
        claims = r["access_token_claims"]
        print("access token claims:", json.dumps({k: claims[k] for k in ("iss", "aud", "client_id", "cnf")}))
        (seen,) = oidc.requests(r["test_id"], path="/token")
        print("the filter told the AS: " + ", ".join(
            f"{h}: {seen.get(h)}" for h in ("x-mtls-client-id", "x-mtls-auth-method", "x-mtls-x5t-s256")))
        expected = pki.x5t_s256("dn-client")
        expect(seen.get("x-mtls-client-id") == "demo-client", "the filter authenticated demo-client")
        expect(claims.get("cnf", {}).get("x5t#S256") == expected,
               f'cnf."x5t#S256" is base64url(SHA-256(dn-client DER)) = {expected}')
        token = r["token_response"]["access_token"]
        print(f"TOKEN={short(token)}")

        banner("2. demo-client calls the protected API with the token and its certificate")
        show_api_call("dn-client", "/api/accounts")
        resp = client.curl(port, "/api/accounts", cert="dn-client", headers=[("authorization", f"Bearer {token}")])
        print(f"HTTP {resp.status}")
        expect(resp.status == 200 and len(api.find(resp.test_id)) == 1, "200 from the API")

        banner("3. the same token replayed with another valid certificate (other-client)")
        show_api_call("other-client", "/api/accounts")
        resp = client.curl(port, "/api/accounts", cert="other-client", headers=[("authorization", f"Bearer {token}")])
        print(f"HTTP {resp.status}")
        print(f"www-authenticate: {resp.header('www-authenticate')}")
        expect(resp.status == 401 and 'error="invalid_token"' in (resp.header("www-authenticate") or "")
               and not api.find(resp.test_id), "401 invalid_token, and the API never saw the request")

        banner("4. a token request as demo-client with other-client's certificate")
        r = client.openid_client("client-credentials", issuer=ISSUER, cert="other-client", client_id="demo-client")
        show_node(r)
        err = r.get("error") or {}
        print(f"HTTP {err.get('status')} {json.dumps({k: err.get(k) for k in ('error', 'error_description')})}")
        expect(not r.get("ok") and err.get("error") == "invalid_client" and not oidc.requests(r["test_id"], "/token"),
               "401 invalid_client from the filter, and the AS never saw the request")
    except Exception as e:  # any failure: report it and fail
        print(f"demo failed: {e}", file=sys.stderr)
        ok = False
    finally:
        envoy_mod.stop_process(proc)
        oidc.stop()
        api.stop()
    banner("result")
    print("demo OK" if ok else f"demo FAILED (logs: {log_dir})")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
