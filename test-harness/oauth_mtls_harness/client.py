"""Requests over real (m)TLS to Envoy: curl for ordinary ones, raw ssl sockets and h2 for exotic framing.

Every request carries a unique `x-test-id` header so a test can ask the echo upstream whether (and how)
that very request reached the AS (`upstream.find(resp.test_id)`).
"""
from __future__ import annotations

import json
import os
import pathlib
import shlex
import socket
import ssl
import subprocess
import tempfile
import time
import uuid
from dataclasses import dataclass, field

from oauth_mtls_harness import HARNESS, pki

FORM = "application/x-www-form-urlencoded"


@dataclass
class Response:
    status: int
    headers: dict[str, list[str]]
    body: bytes
    test_id: str
    command: str = ""
    trailers: dict[str, list[str]] = field(default_factory=dict)

    def header(self, name: str) -> str | None:
        v = self.headers.get(name.lower())
        return v[0] if v else None

    def json(self):
        return json.loads(self.body)

    @property
    def text(self) -> str:
        return self.body.decode("utf-8", "replace")

    def __repr__(self) -> str:
        return f"<Response {self.status} {self.headers} {self.body[:500]!r}>"


def new_test_id() -> str:
    return uuid.uuid4().hex


def token_body(client_id: str | None = "demo-client", grant_type: str = "client_credentials", extra: str = "") -> str:
    parts = [f"grant_type={grant_type}"]
    if client_id is not None:
        parts.append(f"client_id={client_id}")
    if extra:
        parts.append(extra)
    return "&".join(parts)


# ------------------------------------------------------------------------------------------ curl

def curl(port: int, path: str = "/token", *, method: str | None = None, cert: str | None = None,
         cert_file: str | None = None, key_file: str | None = None,
         headers: list[tuple[str, str]] | tuple = (), data: str | bytes | None = None,
         http2: bool = False, timeout: float = 15, print_command: bool = False) -> Response:
    """One request with curl over TLS to 127.0.0.1:port (as `localhost`, verified against the test CA).
    `cert` is a PKI name (NAME.pem / NAME.key); cert_file/key_file give explicit files instead."""
    test_id = new_test_id()
    d = pki.pki_dir()
    url = f"https://localhost:{port}{path}"
    cmd = ["curl", "-sS", "--resolve", f"localhost:{port}:127.0.0.1", "--cacert", str(d / "ca.pem"),
           "--max-time", str(timeout), "-D", "-", "-w", "\n%{http_code}",
           "--http2" if http2 else "--http1.1"]
    if cert:
        cmd += ["--cert", str(d / f"{cert}.pem"), "--key", str(d / f"{cert}.key")]
    if cert_file:
        cmd += ["--cert", cert_file, "--key", key_file or cert_file]
    if method:
        cmd += ["-X", method]
    cmd += ["-H", "Expect:", "-H", f"x-test-id: {test_id}"]
    for k, v in headers:
        cmd += ["-H", f"{k}: {v}"]
    with tempfile.NamedTemporaryFile(prefix="curl-body.") as body_file:
        if data is not None:
            with tempfile.NamedTemporaryFile(prefix="curl-data.", delete=False) as df:
                df.write(data.encode() if isinstance(data, str) else data)
                data_path = df.name
            cmd += ["--data-binary", f"@{data_path}"]
        cmd += ["-o", body_file.name, url]
        try:
            proc = subprocess.run(cmd, capture_output=True, timeout=timeout + 5)
        finally:
            if data is not None:
                os.unlink(data_path)
        body = pathlib.Path(body_file.name).read_bytes()
    shown = " ".join(shlex.quote(c) for c in cmd)
    if print_command:
        print("$ " + _pretty_curl(port, path, method, cert, cert_file, key_file, headers, data, http2))
    if proc.returncode != 0:
        raise CurlError(proc.returncode, proc.stderr.decode(errors="replace"), shown)
    out = proc.stdout.decode("iso-8859-1")
    head, _, code = out.rstrip("\n").rpartition("\n")
    return Response(int(code), _parse_header_blocks(head), body, test_id, shown)


def _pretty_curl(port, path, method, cert, cert_file, key_file, headers, data, http2) -> str:
    """The same request as a copy-pasteable curl command (for the demo's output)."""
    d = pki.pki_dir()
    parts = ["curl", "-sS", "--http2" if http2 else "--http1.1", "--cacert", str(d / "ca.pem")]
    if cert:
        parts += ["--cert", str(d / f"{cert}.pem"), "--key", str(d / f"{cert}.key")]
    if cert_file:
        parts += ["--cert", cert_file, "--key", key_file or cert_file]
    if method and not (method == "POST" and data is not None):
        parts += ["-X", method]
    for k, v in headers:
        parts += ["-H", f"{k}: {v}"]
    if data is not None:
        parts += ["--data-raw", data if isinstance(data, str) else data.decode("utf-8", "replace")]
    parts.append(f"https://localhost:{port}{path}")
    return " ".join(shlex.quote(p) for p in parts)


class CurlError(RuntimeError):
    def __init__(self, code: int, stderr: str, command: str):
        super().__init__(f"curl exited {code}: {stderr.strip()}\n{command}")
        self.code = code
        self.stderr = stderr


def _parse_header_blocks(text: str) -> dict[str, list[str]]:
    """Headers of the last response block (skips 1xx blocks)."""
    blocks = [b for b in text.replace("\r\n", "\n").split("\n\n") if b.strip()]
    if not blocks:
        return {}
    out: dict[str, list[str]] = {}
    for line in blocks[-1].split("\n")[1:]:
        if ":" in line:
            k, v = line.split(":", 1)
            out.setdefault(k.strip().lower(), []).append(v.strip())
    return out


def token_request(port: int, cert: str | None, client_id: str | None = "demo-client", *,
                  path: str = "/token", headers: list[tuple[str, str]] | tuple = (), body: str | None = None,
                  http2: bool = False, **kw) -> Response:
    """POST <path> with a client_credentials form (client_id in the body) presenting PKI cert `cert`."""
    data = token_body(client_id) if body is None else body
    return curl(port, path, method="POST", cert=cert, headers=[("content-type", FORM), *headers], data=data,
                http2=http2, **kw)


# ------------------------------------------------------------------------------------------ raw sockets

def tls_context(cert: str | None, alpn: list[str]) -> ssl.SSLContext:
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.load_verify_locations(str(pki.pki_dir() / "ca.pem"))
    if cert:
        ctx.load_cert_chain(str(pki.cert_path(cert)), str(pki.key_path(cert)))
    ctx.set_alpn_protocols(alpn)
    return ctx


def _connect(port: int, cert: str | None, alpn: list[str]) -> ssl.SSLSocket:
    raw = socket.create_connection(("127.0.0.1", port), timeout=15)
    raw.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    return tls_context(cert, alpn).wrap_socket(raw, server_hostname="localhost")


def http1_raw(port: int, parts: list[bytes], cert: str | None, test_id: str, gap: float = 0.0) -> Response:
    """Send `parts` (a complete HTTP/1.1 request, `Connection: close`) one sendall each with `gap` seconds
    between them, then read the response until the server closes."""
    with _connect(port, cert, ["http/1.1"]) as s:
        for i, part in enumerate(parts):
            s.sendall(part)
            if gap and i + 1 < len(parts):
                time.sleep(gap)
        return read_http1_response(s, test_id)


def read_http1_response(s: ssl.SSLSocket, test_id: str = "") -> Response:
    """One HTTP/1.1 response from `s`: read until it is complete (Content-Length or chunked framing) or the
    server closes, so a keep-alive connection can carry the next request."""
    data = b""
    while True:
        try:
            chunk = s.recv(65536)
        except (ConnectionResetError, ssl.SSLEOFError):
            break
        if not chunk:
            break
        data += chunk
        if _http1_complete(data):
            break
    return _parse_http1(data, test_id)


def _http1_complete(data: bytes) -> bool:
    head, sep, body = data.partition(b"\r\n\r\n")
    if not sep:
        return False
    headers = _parse_header_blocks(head.decode("iso-8859-1"))
    if "content-length" in headers:
        return len(body) >= int(headers["content-length"][0])
    if "chunked" in ",".join(headers.get("transfer-encoding", [])).lower():
        return body.endswith(b"0\r\n\r\n")
    return False


def _parse_http1(data: bytes, test_id: str) -> Response:
    head, _, body = data.partition(b"\r\n\r\n")
    lines = head.decode("iso-8859-1").split("\r\n")
    if not lines or not lines[0].startswith("HTTP/1."):
        raise RuntimeError(f"no HTTP/1.1 response: {data[:200]!r}")
    status = int(lines[0].split()[1])
    headers = _parse_header_blocks(head.decode("iso-8859-1"))
    if "chunked" in ",".join(headers.get("transfer-encoding", [])).lower():
        out, rest = b"", body
        while rest:
            size_line, _, rest = rest.partition(b"\r\n")
            size = int(size_line.split(b";")[0] or b"0", 16)
            if size == 0:
                break
            out, rest = out + rest[:size], rest[size + 2:]
        body = out
    elif "content-length" in headers:
        body = body[: int(headers["content-length"][0])]
    return Response(status, headers, body, test_id, "raw HTTP/1.1")


def http1_request(port: int, method: str, path: str, header_lines: list[tuple[str, str]], body: bytes,
                  cert: str | None, *, chunk_size: int | None = None, gap: float = 0.005) -> Response:
    """HTTP/1.1 over a raw TLS socket. Header lines are sent exactly as given (repeats allowed). With
    `chunk_size`, the body is sent with Transfer-Encoding: chunked, `chunk_size` bytes per chunk, each
    chunk in its own TCP segment (TCP_NODELAY, `gap` seconds apart)."""
    test_id = new_test_id()
    lines = [f"{method} {path} HTTP/1.1", f"host: localhost:{port}", "connection: close", f"x-test-id: {test_id}"]
    lines += [f"{k}: {v}" for k, v in header_lines]
    if chunk_size:
        lines.append("transfer-encoding: chunked")
        head = ("\r\n".join(lines) + "\r\n\r\n").encode()
        parts = [head] + [b"%x\r\n%s\r\n" % (len(body[i:i + chunk_size]), body[i:i + chunk_size])
                          for i in range(0, len(body), chunk_size)] + [b"0\r\n\r\n"]
        return http1_raw(port, parts, cert, test_id, gap)
    lines.append(f"content-length: {len(body)}")
    head = ("\r\n".join(lines) + "\r\n\r\n").encode()
    return http1_raw(port, [head + body], cert, test_id)


# ------------------------------------------------------------------------------------------ HTTP/2

def h2_request(port: int, method: str, path: str, headers: list[tuple[str, str]], body_parts: list[bytes],
               cert: str | None, *, trailers: list[tuple[str, str]] | None = None, gap: float = 0.01) -> Response:
    """One HTTP/2 request; each element of `body_parts` goes out as its own DATA frame (flushed, `gap` apart),
    optionally followed by a trailers HEADERS frame."""
    import h2.config
    import h2.connection
    import h2.events

    test_id = new_test_id()
    with _connect(port, cert, ["h2"]) as s:
        if s.selected_alpn_protocol() != "h2":
            raise RuntimeError(f"server did not negotiate h2 (got {s.selected_alpn_protocol()!r})")
        conn = h2.connection.H2Connection(h2.config.H2Configuration(client_side=True, header_encoding="utf-8"))
        conn.initiate_connection()
        s.sendall(conn.data_to_send())
        sid = conn.get_next_available_stream_id()
        req = [(":method", method), (":path", path), (":scheme", "https"), (":authority", f"localhost:{port}"),
               ("x-test-id", test_id)] + [(k.lower(), v) for k, v in headers]
        no_body = not body_parts and not trailers
        conn.send_headers(sid, req, end_stream=no_body)
        s.sendall(conn.data_to_send())
        for i, part in enumerate(body_parts):
            last = i + 1 == len(body_parts)
            time.sleep(gap)
            conn.send_data(sid, part, end_stream=last and not trailers)
            s.sendall(conn.data_to_send())
        if trailers:
            time.sleep(gap)
            conn.send_headers(sid, [(k.lower(), v) for k, v in trailers], end_stream=True)
            s.sendall(conn.data_to_send())
        status, rheaders, rtrailers, body = 0, {}, {}, b""
        done = False
        while not done:
            data = s.recv(65536)
            if not data:
                break
            for ev in conn.receive_data(data):
                if isinstance(ev, h2.events.ResponseReceived) and ev.stream_id == sid:
                    for k, v in ev.headers:
                        if k == ":status":
                            status = int(v)
                        else:
                            rheaders.setdefault(k, []).append(v)
                elif isinstance(ev, h2.events.DataReceived) and ev.stream_id == sid:
                    body += ev.data
                    conn.acknowledge_received_data(ev.flow_controlled_length, sid)
                elif isinstance(ev, h2.events.TrailersReceived) and ev.stream_id == sid:
                    for k, v in ev.headers:
                        rtrailers.setdefault(k, []).append(v)
                elif isinstance(ev, h2.events.ConnectionTerminated) or (
                        isinstance(ev, (h2.events.StreamEnded, h2.events.StreamReset)) and ev.stream_id == sid):
                    done = True
            s.sendall(conn.data_to_send())
    return Response(status, rheaders, body, test_id, "h2", rtrailers)


def http1_twice_with_resumed_session(port: int, method: str, path: str, header_lines: list[tuple[str, str]],
                                     body: bytes, cert: str) -> tuple[Response, Response, bool]:
    """Two HTTP/1.1 requests on two TLS connections, the second resuming the first one's TLS session (as
    browsers and most HTTP client libraries do). Returns (first, second, second_was_resumed)."""
    ctx = tls_context(cert, ["http/1.1"])
    out = []
    session = None
    reused = False
    for _ in range(2):
        test_id = new_test_id()
        lines = [f"{method} {path} HTTP/1.1", f"host: localhost:{port}", "connection: close",
                 f"x-test-id: {test_id}", f"content-length: {len(body)}"] + [f"{k}: {v}" for k, v in header_lines]
        raw = socket.create_connection(("127.0.0.1", port), timeout=15)
        with ctx.wrap_socket(raw, server_hostname="localhost", session=session) as s:
            s.sendall(("\r\n".join(lines) + "\r\n\r\n").encode() + body)
            data = b""
            while not _http1_complete(data):
                chunk = s.recv(65536)
                if not chunk:
                    break
                data += chunk
            reused = s.session_reused
            session = s.session
        out.append(_parse_http1(data, test_id))
    return out[0], out[1], reused


# ------------------------------------------------------------------------------------------ openid-client

AS_DIR = HARNESS / "as"


def openid_client(command: str, *, cert: str | None = None, refresh_cert: str | None = None,
                  test_id: str | None = None, timeout: float = 60, **options: str) -> dict:
    """Run `node test-harness/as/client.mjs <command>` (openid-client v6 over mTLS with PKI cert `cert`) and
    return the JSON object it prints. `options` become `--name value` (underscores -> dashes), e.g.
    issuer=..., client_id=..., metadata=json.dumps(...). The result's `test_id` is the x-test-id its
    requests carried (a fresh one unless given)."""
    d = pki.pki_dir()
    test_id = test_id or new_test_id()
    cmd = ["node", str(AS_DIR / "client.mjs"), command, "--ca", str(d / "ca.pem"), "--test-id", test_id]
    if cert:
        cmd += ["--cert", str(pki.cert_path(cert)), "--key", str(pki.key_path(cert))]
    if refresh_cert:
        cmd += ["--refresh-cert", str(pki.cert_path(refresh_cert)), "--refresh-key", str(pki.key_path(refresh_cert))]
    for k, v in options.items():
        if v is not None:
            cmd += ["--" + k.replace("_", "-"), str(v)]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)
    lines = [ln for ln in proc.stdout.splitlines() if ln.startswith("{")]
    if proc.returncode != 0 or not lines:
        raise RuntimeError(f"client.mjs {command} exited {proc.returncode}:\n{proc.stdout}\n{proc.stderr}\n"
                           + " ".join(shlex.quote(c) for c in cmd))
    out = json.loads(lines[-1])
    out["test_id"] = test_id
    out["command"] = " ".join(shlex.quote(c) for c in cmd)
    return out
