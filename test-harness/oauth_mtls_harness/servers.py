"""In-process HTTP/1.1 servers the tests put behind Envoy: the echo "AS", the registry, the JWKS host.

Each runs a ThreadingHTTPServer on 127.0.0.1 (a free port unless one is given) in a daemon thread.
`OidcProvider` runs the real AS instead (node-oidc-provider, test-harness/as/server.mjs) as a process.
"""
from __future__ import annotations

import hashlib
import json
import pathlib
import shutil
import subprocess
import threading
import time
import urllib.request
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from oauth_mtls_harness import HARNESS
from oauth_mtls_harness import envoy as envoy_mod


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True


def _read_body(handler: BaseHTTPRequestHandler) -> bytes:
    te = (handler.headers.get("transfer-encoding") or "").lower()
    if "chunked" in te:
        out = b""
        while True:
            line = handler.rfile.readline()
            size = int(line.split(b";", 1)[0].strip() or b"0", 16)
            if size == 0:
                # trailers until the empty line
                while handler.rfile.readline() not in (b"\r\n", b"\n", b""):
                    pass
                return out
            out += handler.rfile.read(size)
            handler.rfile.readline()
    length = int(handler.headers.get("content-length") or 0)
    return handler.rfile.read(length) if length else b""


def _headers_dict(handler: BaseHTTPRequestHandler) -> dict[str, list[str]]:
    out: dict[str, list[str]] = {}
    for k, v in handler.headers.items():
        out.setdefault(k.lower(), []).append(v)
    return out


class _BaseHandler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    # Headers and body go out in separate writes: without TCP_NODELAY the body waits for Envoy's delayed ACK
    # (~40 ms), which would swamp any latency a test compares.
    disable_nagle_algorithm = True

    def log_message(self, *args) -> None:  # keep pytest output clean
        pass

    def _send(self, status: int, body: bytes, headers: dict[str, str] | None = None) -> None:
        self.send_response(status)
        for k, v in (headers or {}).items():
            self.send_header(k, v)
        self.send_header("content-length", str(len(body)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)


class ServerBase:
    def __init__(self, handler_cls, port: int = 0):
        handler = type("H", (handler_cls,), {"owner": self})
        self.httpd = _Server(("127.0.0.1", port), handler)
        self.port = self.httpd.server_address[1]
        self.thread = threading.Thread(target=self.httpd.serve_forever, name=type(self).__name__, daemon=True)
        self.thread.start()

    def stop(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


# ------------------------------------------------------------------ the echo upstream ("AS")

@dataclass
class Seen:
    method: str
    path: str
    headers: dict[str, list[str]]
    body: str

    def header(self, name: str) -> str | None:
        v = self.headers.get(name.lower())
        return v[0] if v else None


class _EchoHandler(_BaseHandler):
    owner: EchoUpstream

    def _handle(self) -> None:
        body = _read_body(self)
        seen = Seen(self.command, self.path, _headers_dict(self), body.decode("utf-8", "replace"))
        with self.owner.lock:
            self.owner.count += 1
            if self.owner.record:
                self.owner.requests.append(seen)
        doc = {"method": seen.method, "path": seen.path, "headers": seen.headers, "body": seen.body}
        self._send(200, json.dumps(doc).encode(), {"content-type": "application/json"})

    do_GET = do_POST = do_PUT = do_DELETE = do_PATCH = do_HEAD = do_OPTIONS = _handle


class EchoUpstream(ServerBase):
    """Answers every request 200 with JSON {method, path, headers: {name: [values]}, body} and records it
    (`record=False`: only counts them, for long load runs)."""

    def __init__(self, port: int = 0, record: bool = True):
        self.lock = threading.Lock()
        self.requests: list[Seen] = []
        self.record = record
        self.count = 0
        super().__init__(_EchoHandler, port)

    def find(self, test_id: str) -> list[Seen]:
        """Requests that carried `x-test-id: <test_id>` (the client helpers add one to every request)."""
        with self.lock:
            return [r for r in self.requests if test_id in r.headers.get("x-test-id", [])]


# ------------------------------------------------------------------ registry / JWKS document server

@dataclass
class Document:
    body: bytes = b"[]"
    status: int = 200
    delay: float = 0.0
    etag: bool = True          # send an ETag and honour If-None-Match with 304
    content_type: str = "application/json"
    drop: bool = False         # close the connection without any response
    headers: dict[str, str] = field(default_factory=dict)  # extra response headers (e.g. cache-control)


@dataclass
class Fetch:
    path: str
    headers: dict[str, list[str]]
    status: int
    at: float = field(default_factory=time.monotonic)


class _DocHandler(_BaseHandler):
    owner: DocumentServer

    def do_GET(self) -> None:
        _read_body(self)
        with self.owner.lock:
            doc = self.owner.docs.get(self.path) or self.owner.docs.get(self.path.split("?", 1)[0])
            doc = Document(**doc.__dict__) if doc else None
            self.owner.in_flight += 1
            self.owner.max_in_flight = max(self.owner.max_in_flight, self.owner.in_flight)
        try:
            self._serve(doc)
        finally:
            with self.owner.lock:
                self.owner.in_flight -= 1

    def _serve(self, doc: Document | None) -> None:
        headers = _headers_dict(self)
        if doc is None:
            self._record(headers, 404)
            self._send(404, b'{"error":"no document at this path"}', {"content-type": "application/json"})
            return
        if doc.delay:
            time.sleep(doc.delay)
        if doc.drop:
            self._record(headers, 0)
            self.close_connection = True
            return
        tag = '"' + hashlib.sha256(doc.body).hexdigest()[:16] + '"'
        extra = {"content-type": doc.content_type, **doc.headers}
        if doc.etag and doc.status == 200:
            extra["etag"] = tag
            inm = [v.strip() for h in headers.get("if-none-match", []) for v in h.split(",")]
            if tag in inm:
                self._record(headers, 304)
                self.send_response(304)
                self.send_header("etag", tag)
                self.send_header("content-length", "0")
                self.end_headers()
                return
        self._record(headers, doc.status)
        self._send(doc.status, doc.body, extra)

    def _record(self, headers: dict[str, list[str]], status: int) -> None:
        with self.owner.lock:
            self.owner.fetches.append(Fetch(self.path, headers, status))


class DocumentServer(ServerBase):
    """Serves per-path documents that tests change at runtime (body, status, delay, ETag, drop)."""

    def __init__(self, port: int = 0):
        self.lock = threading.Lock()
        self.docs: dict[str, Document] = {}
        self.fetches: list[Fetch] = []
        self.in_flight = 0        # requests being answered now (a delay keeps them in flight)
        self.max_in_flight = 0    # the most at once since the last reset_in_flight()
        super().__init__(_DocHandler, port)

    def set(self, path: str, body: bytes | str | list | dict | None = None, **kw) -> None:
        """Replace the document at `path`; dict/list bodies are JSON-encoded. Unnamed fields keep defaults."""
        if isinstance(body, (list, dict)):
            body = json.dumps(body).encode()
        elif isinstance(body, str):
            body = body.encode()
        with self.lock:
            doc = Document(**kw) if body is None else Document(body=body, **kw)
            self.docs[path] = doc

    def update(self, path: str, **kw) -> None:
        """Change some fields (status, delay, drop, ...) of the document at `path`."""
        with self.lock:
            for k, v in kw.items():
                setattr(self.docs[path], k, v)

    def reset_in_flight(self) -> None:
        with self.lock:
            self.max_in_flight = self.in_flight

    def fetch_count(self, path: str | None = None, status: int | None = None) -> int:
        with self.lock:
            return sum(1 for f in self.fetches
                       if (path is None or f.path == path) and (status is None or f.status == status))

    def fetches_of(self, path: str) -> list[Fetch]:
        with self.lock:
            return [f for f in self.fetches if f.path == path]


# ------------------------------------------------------------------ the real AS: node-oidc-provider

AS_DIR = HARNESS / "as"


class NodeMissing(RuntimeError):
    pass


def require_node_modules() -> None:
    """test-harness/as/node_modules must exist (`make deps` / the Makefile runs `npm ci` there)."""
    if not shutil.which("node"):
        raise NodeMissing("node (>= 20.18) is not on the PATH: the real AS and client need it")
    if not (AS_DIR / "node_modules" / "oidc-provider").is_dir():
        raise NodeMissing(f"missing {AS_DIR / 'node_modules'}: run `npm ci` in {AS_DIR} (the Makefile does)")


@dataclass
class AsRequest:
    """One line of the AS's request log: what reached it, and the filter's annotations it carried."""
    method: str
    path: str
    fields: dict[str, str]

    def get(self, name: str) -> str | None:
        v = self.fields.get(name)
        return None if v in (None, "-") else v


class OidcProvider:
    """test-harness/as/server.mjs (node-oidc-provider) on 127.0.0.1:`port`, its registry endpoint on
    `registry_port`, issuer `issuer` (the public URL through Envoy). stdout/stderr go to `log_path`."""

    def __init__(self, issuer: str, port: int, registry_port: int, clients: list[dict], log_dir,
                 initial_access_token: str | None = None, name: str = "oidc-provider"):
        require_node_modules()
        self.issuer = issuer
        self.port = port
        self.registry_port = registry_port
        self.name = name
        self.dir = pathlib.Path(log_dir)
        self.dir.mkdir(parents=True, exist_ok=True)
        self.clients_path = self.dir / "as-clients.json"
        self.clients_path.write_text(json.dumps(clients, indent=1))
        self.log_path = self.dir / "as.log"
        self.initial_access_token = initial_access_token
        self.proc = None

    def start(self, timeout: float = 30.0) -> OidcProvider:
        cmd = ["node", str(AS_DIR / "server.mjs"), "--issuer", self.issuer, "--port", str(self.port),
               "--registry-port", str(self.registry_port), "--clients", str(self.clients_path)]
        if self.initial_access_token:
            cmd += ["--initial-access-token", self.initial_access_token]
        self.cmd = cmd
        # Seen once in a full-suite run: node printed its runtime warning and then never reached `ready` (cause
        # not found). One more start, logged in the same file, before failing.
        for attempt in (1, 2):
            with open(self.log_path, "wb" if attempt == 1 else "ab") as out:
                if attempt == 2:
                    out.write(f"--- harness: not ready after {timeout}s, starting the AS again ---\n".encode())
                    out.flush()
                self.proc = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                             start_new_session=True)
            deadline = time.monotonic() + timeout
            while time.monotonic() < deadline:
                if self.proc.poll() is not None:
                    raise RuntimeError(f"the AS exited with {self.proc.returncode} during start:\n{self.log_tail()}")
                if any(ln.startswith("ready ") for ln in self.lines()):
                    return self
                time.sleep(0.1)
            self.stop()
        raise RuntimeError(f"the AS was not ready after two starts of {timeout}s:\n{self.log_tail()}")

    def stop(self) -> None:
        envoy_mod.stop_process(self.proc)

    def alive(self) -> bool:
        return bool(self.proc) and self.proc.poll() is None

    def lines(self) -> list[str]:
        try:
            return self.log_path.read_text(errors="replace").splitlines()
        except FileNotFoundError:
            return []

    def log_tail(self, lines: int = 40) -> str:
        return "\n".join(self.lines()[-lines:]) + f"\n(full log: {self.log_path})"

    def requests(self, test_id: str | None = None, path: str | None = None) -> list[AsRequest]:
        """Requests the AS logged (registry fetches excluded), optionally only those carrying
        `x-test-id: test_id` and/or with this exact path."""
        out = []
        for line in self.lines():
            parts = line.split(" ")
            if len(parts) < 3 or not parts[0].isupper() or not parts[1].startswith("/") or "(registry)" in line:
                continue
            fields = dict(p.split("=", 1) for p in parts[2:] if "=" in p)
            r = AsRequest(parts[0], parts[1], fields)
            if test_id is not None and r.get("x-test-id") != test_id:
                continue
            if path is not None and r.path != path:
                continue
            out.append(r)
        return out

    def events(self) -> list[str]:
        return [ln for ln in self.lines() if ln.startswith("event ")]

    def registry_document(self) -> list[dict]:
        with urllib.request.urlopen(f"http://127.0.0.1:{self.registry_port}/registry/clients", timeout=5) as r:
            return json.loads(r.read())
