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

`--keep` (`make demo KEEP=1`): after the checks the stack keeps running in the background (this process,
detached, holds the API and stops everything on SIGTERM); the curl commands to try and the command that stops it
(`make demo-stop`) are printed. Its pid is in build/demo/demo.pid, its later output in build/demo/keep.log.
"""
from __future__ import annotations

import argparse
import json
import os
import pathlib
import shlex
import signal
import socket
import subprocess
import sys
import threading
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


LOG_DIR = REPO / "build" / "demo"
PID_FILE = LOG_DIR / "demo.pid"
# Set by SIGTERM/SIGINT in a kept demo. A handler, not a blocked signal mask: the children (Envoy, the AS)
# would inherit the mask and ignore the SIGTERM that stops them.
STOP = threading.Event()


def banner(text: str) -> None:
    print(f"\n=== {text} ===", flush=True)


def short(value: str, n: int = 60) -> str:
    return value if len(value) <= n else value[: n - 3] + "..."


def port_free(port: int) -> bool:
    """Nothing listens on it. SO_REUSEADDR as Envoy and the servers set it: the TIME_WAIT connections a demo run
    just closed do not make it busy."""
    with socket.socket() as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
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


def rel(path: pathlib.Path) -> str:
    """A path as seen from the repository root, where the printed commands run."""
    try:
        return str(path.relative_to(REPO))
    except ValueError:
        return str(path)


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


def try_it(port: int) -> None:
    """The commands to try against the running stack; each works as printed, from the repository root."""
    d = rel(pki.pki_dir())

    def tls(cert: str) -> str:
        return f"--cacert {d}/ca.pem --cert {d}/{cert}.pem --key {d}/{cert}.key"

    extract = "python3 -c 'import json,sys; print(json.load(sys.stdin)[\"access_token\"])'"
    token = (f"TOKEN=$(curl -sS {tls('dn-client')} -d grant_type=client_credentials -d client_id=demo-client "
             f"https://localhost:{port}/token | {extract})")
    print(f"""From the repository root ({REPO}):
  # a certificate-bound token for demo-client (tls_client_auth with dn-client's certificate)
  {token}
  # the API with that token and the same certificate: 200
  curl -sS {tls('dn-client')} -H "authorization: Bearer $TOKEN" https://localhost:{port}/api/accounts
  # the same token with another valid certificate: 401 invalid_token
  curl -sS -i {tls('other-client')} -H "authorization: Bearer $TOKEN" https://localhost:{port}/api/accounts
  # demo-client's token request with other-client's certificate: 401 invalid_client, from the filter
  curl -sS {tls('other-client')} -d grant_type=client_credentials -d client_id=demo-client https://localhost:{port}/token
  # the filter's counters (authenticated, rejected, registry clients...)
  curl -sS http://127.0.0.1:{PORTS['admin']}/stats | grep wasmcustom.oauth_mtls
Stop it: make demo-stop   (or: kill $(cat {rel(PID_FILE)}); the file goes when everything has stopped)""")


def detach() -> int | None:
    """--keep: fork; the parent waits until the child has run the demo, then exits with its status (None in the
    child). The child is a new session, so it outlives `make`; it is the process that keeps the stack."""
    read_end, write_end = os.pipe()
    pid = os.fork()
    if pid:
        os.close(write_end)
        with os.fdopen(read_end, "rb") as r:
            status = r.read(1)
        return status[0] if status else 1
    os.close(read_end)
    os.setsid()
    os.environ["OAUTH_MTLS_DEMO_STATUS_FD"] = str(write_end)
    return None


def report_and_keep(ok: bool) -> None:
    """In the kept child: tell the parent the result, move output to keep.log, and wait for SIGTERM/SIGINT."""
    fd = int(os.environ.pop("OAUTH_MTLS_DEMO_STATUS_FD"))
    sys.stdout.flush()
    sys.stderr.flush()
    log = os.open(LOG_DIR / "keep.log", os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
    os.dup2(log, 1)
    os.dup2(log, 2)
    os.write(fd, bytes([0 if ok else 1]))
    os.close(fd)
    while ok and not STOP.wait(1):
        pass


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--keep", action="store_true", help="keep the stack running after the checks")
    keep = parser.parse_args().keep
    if keep and PID_FILE.is_file():
        print(f"a kept demo may still run (pid {PID_FILE.read_text().strip()}): `make demo-stop` first",
              file=sys.stderr)
        return 2
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
    if not (pki.pki_dir() / "ca.pem").is_file():
        print(f"making it in {rel(pki.pki_dir())} with openssl (CAs, client and server certificates, CRLs): "
              "takes a few seconds...", flush=True)
    started = time.monotonic()
    print(f"{rel(pki.ensure_pki())} ({time.monotonic() - started:.1f} s)")

    log_dir = LOG_DIR
    log_dir.mkdir(parents=True, exist_ok=True)
    if keep:
        status = detach()
        if status is not None:
            return status
        for signum in (signal.SIGTERM, signal.SIGINT):
            signal.signal(signum, lambda *_: STOP.set())
        PID_FILE.write_text(f"{os.getpid()}\n")
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
    logs = f"{rel(log_dir)}/ (envoy.log, envoy.out, as.log)"
    try:
        banner("result")
        print(f"demo OK; logs: {logs}" if ok else f"demo FAILED; logs: {logs}")
        if keep and ok:
            banner("the stack keeps running")
            print(f"Envoy https://localhost:{PORTS['listener']} (admin http://127.0.0.1:{PORTS['admin']}), "
                  f"AS 127.0.0.1:{PORTS['AS']}, registry 127.0.0.1:{PORTS['AS registry']}, "
                  f"API 127.0.0.1:{PORTS['API']}")
            try_it(PORTS["listener"])
        if keep:
            report_and_keep(ok)
    finally:
        envoy_mod.stop_process(proc)
        oidc.stop()
        api.stop()
        if keep:
            PID_FILE.unlink(missing_ok=True)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
