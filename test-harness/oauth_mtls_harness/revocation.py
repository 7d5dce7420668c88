"""A real CA and a real OCSP responder for the revocation tests, both OpenSSL's own:

- `OpensslCa`: `openssl ca` with an index file, signing with the test PKI's CA (the one Envoy's listener trusts):
  issue a client certificate (with AIA OCSP and CRL Distribution Point URLs), revoke it, `-gencrl`;
- `OcspResponder`: `openssl ocsp -index ... -port ...` answering from that index (re-read when it changes), signed
  by the CA, a delegated responder certificate, or any other key;
- `PkiServer`: the HTTP server behind the filter's `revocation.cluster`: it serves the CRLs the tests publish
  at /crl/<name> and forwards /ocsp/<request> to the responder, unless a test turns on a fault (slow, garbage,
  a replayed answer, an answer about another certificate).

Everything lands under $OAUTH_MTLS_BUILD/revocation/<name>; keys are made there by the tests, never committed."""
from __future__ import annotations

import base64
import http.server
import pathlib
import shutil
import subprocess
import threading
import time
import urllib.error
import urllib.parse
import urllib.request

from oauth_mtls_harness import pki
from oauth_mtls_harness.envoy import free_port, poll

CA_CNF = """[ ca ]
default_ca = CA_default
[ CA_default ]
dir = {dir}
database = $dir/index.txt
new_certs_dir = $dir/newcerts
serial = $dir/serial
crlnumber = $dir/crlnumber
default_md = sha256
policy = policy_any
default_days = 30
unique_subject = no
copy_extensions = none
preserve = yes
[ policy_any ]
commonName = supplied
[ crl_ext ]
authorityKeyIdentifier = keyid:always
[ responder ]
basicConstraints = CA:FALSE
extendedKeyUsage = OCSPSigning
"""


def _run(*args: str, cwd: pathlib.Path) -> bytes:
    return subprocess.run(["openssl", *args], cwd=cwd, check=True, capture_output=True).stdout


class OpensslCa:
    """`openssl ca` over a test PKI CA's key (`ca1`, which Envoy's listener trusts, by default), with its own
    index (a fresh directory per name)."""

    def __init__(self, name: str, ca: str = "ca1", ca_files: tuple[str, str] | None = None):
        self.dir = pki.build_dir() / "revocation" / name
        shutil.rmtree(self.dir, ignore_errors=True)
        (self.dir / "newcerts").mkdir(parents=True)
        (self.dir / "index.txt").write_text("")
        (self.dir / "index.txt.attr").write_text("unique_subject = no\n")
        # Serials distinct from the test PKI's own certificates (and from one run to the next).
        (self.dir / "serial").write_text(f"{int(time.time() * 1000) & 0xFFFFFFFFFF | 0x100000000000:X}\n")
        (self.dir / "crlnumber").write_text("01\n")
        (self.dir / "ca.cnf").write_text(CA_CNF.format(dir=self.dir))
        cert, key = ca_files or (str(pki.cert_path(ca)), str(pki.key_path(ca)))
        self.ca_cert, self.ca_key = pathlib.Path(cert), pathlib.Path(key)
        self.responders: list[OcspResponder] = []

    def _ca(self, *args: str) -> bytes:
        out = _run("ca", "-batch", "-config", "ca.cnf", "-cert", str(self.ca_cert), "-keyfile", str(self.ca_key),
                   *args, cwd=self.dir)
        self.index_changed()
        return out

    def index_changed(self) -> None:
        """`openssl ocsp -port` (OpenSSL 3.0) reads its index once, at start: the responders of this CA start
        again on their port, as an operator's would after the CA's index changes."""
        for responder in list(self.responders):
            responder.restart()

    def issue(self, cn: str, *, ocsp_url: str | None = None, crl_url: str | None = None,
              responder: bool = False) -> tuple[str, str]:
        """A P-256 key and a certificate `CN=<cn>` signed by the CA; returns (cert file, key file)."""
        key, csr, cert = (self.dir / f"{cn}.{ext}" for ext in ("key", "csr", "pem"))
        _run("req", "-new", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes", "-keyout", str(key),
             "-subj", f"/CN={cn}", "-out", str(csr), cwd=self.dir)
        lines = ["[ leaf ]", "basicConstraints = CA:FALSE"]
        if ocsp_url:
            lines.append(f"authorityInfoAccess = OCSP;URI:{ocsp_url}")
        if crl_url:
            lines.append(f"crlDistributionPoints = URI:{crl_url}")
        ext = self.dir / f"{cn}.ext"
        ext.write_text("\n".join(lines) + "\n")
        if responder:
            self._ca("-extensions", "responder", "-in", str(csr), "-out", str(cert), "-notext")
        else:
            self._ca("-extfile", str(ext), "-extensions", "leaf", "-in", str(csr), "-out", str(cert), "-notext")
        return str(cert), str(key)

    def revoke(self, cert_file: str) -> None:
        self._ca("-revoke", cert_file)

    def crl(self, hours: int = 24, seconds: int | None = None) -> bytes:
        """A CRL of everything revoked so far (DER), valid for `hours` (or `seconds`)."""
        out = self.dir / "crl.pem"
        validity = ["-crlsec", str(seconds)] if seconds is not None else ["-crlhours", str(hours)]
        self._ca("-gencrl", *validity, "-crlexts", "crl_ext", "-out", str(out))
        return _run("crl", "-in", str(out), "-outform", "DER", cwd=self.dir)

    @staticmethod
    def serial_of(cert_file: str) -> str:
        out = subprocess.run(["openssl", "x509", "-in", cert_file, "-noout", "-serial"], check=True,
                             capture_output=True, text=True).stdout
        return out.strip().split("=", 1)[1]

    def request_for(self, cert_file: str) -> bytes:
        """The DER OCSP request (SHA-1 CertID, no nonce) openssl makes for `cert_file`."""
        out = self.dir / "req.der"
        _run("ocsp", "-issuer", str(self.ca_cert), "-cert", cert_file, "-no_nonce", "-reqout", str(out),
             cwd=self.dir)
        return out.read_bytes()


class OcspResponder:
    """`openssl ocsp -port` answering from the CA's index, signed by `signer` (cert, key): the CA by default.
    It starts again (same port) whenever the CA's index changes."""

    def __init__(self, ca: OpensslCa, signer: tuple[str, str] | None = None, next_update_minutes: int | None = None):
        self.ca = ca
        self.port = free_port()
        cert, key = signer or (str(ca.ca_cert), str(ca.ca_key))
        self.cmd = ["openssl", "ocsp", "-index", str(ca.dir / "index.txt"), "-port", str(self.port), "-rsigner",
                    cert, "-rkey", key, "-CA", str(ca.ca_cert), "-ignore_err"]
        if next_update_minutes:
            self.cmd += ["-nmin", str(next_update_minutes)]
        self.proc: subprocess.Popen | None = None
        self._start()
        ca.responders.append(self)

    def _start(self) -> None:
        with open(self.ca.dir / f"ocsp-{self.port}.log", "ab") as log:
            self.proc = subprocess.Popen(self.cmd, cwd=self.ca.dir, stdout=log, stderr=subprocess.STDOUT)
        poll(self._answers, timeout=10, what="openssl ocsp listening")

    def _answers(self) -> bool:
        try:
            urllib.request.urlopen(f"http://127.0.0.1:{self.port}/", timeout=1).read()
        except urllib.error.HTTPError:
            return True  # it answered (an empty request is an error to it)
        except OSError:
            return False
        return True

    def _stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                self.proc.kill()

    def restart(self) -> None:
        self._stop()
        self._start()

    def stop(self) -> None:
        self._stop()
        if self in self.ca.responders:
            self.ca.responders.remove(self)


class _Handler(http.server.BaseHTTPRequestHandler):
    server: PkiServer
    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True

    def log_message(self, *args) -> None:
        pass

    def _send(self, status: int, body: bytes, content_type: str) -> None:
        self.send_response(status)
        self.send_header("content-type", content_type)
        self.send_header("content-length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_GET(self) -> None:
        s = self.server
        with s.lock:
            s.requests.append(self.path)
            crl = s.crls.get(self.path)
            fault, delay, replay, swap = s.fault, s.delay, s.replay, s.swap_request
        if self.path.startswith("/crl/"):
            if crl is None:
                self._send(404, b"no such CRL", "text/plain")
            else:
                self._send(200, crl, "application/pkix-crl")
            return
        if not self.path.startswith("/ocsp/"):
            self._send(404, b"", "text/plain")
            return
        if delay:
            time.sleep(delay)
        if fault == "garbage":
            self._send(200, b"<html>this is not an OCSP response</html>", "application/ocsp-response")
            return
        if replay is not None:
            self._send(200, replay, "application/ocsp-response")
            return
        tail = self.path[len("/ocsp/"):]
        if swap is not None:
            tail = urllib.parse.quote(base64.b64encode(swap).decode(), safe="")
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{s.responder_port}/{tail}", timeout=5) as r:
                body = r.read()
        except OSError as e:
            self._send(502, f"responder unreachable: {e}".encode(), "text/plain")
            return
        with s.lock:
            s.answers.append(body)
        self._send(200, body, "application/ocsp-response")


class PkiServer(http.server.ThreadingHTTPServer):
    """The CRL publication point and the way to the OCSP responder, as the filter's `revocation.cluster`."""

    daemon_threads = True

    def __init__(self):
        super().__init__(("127.0.0.1", 0), _Handler)
        self.port = self.server_address[1]
        self.lock = threading.Lock()
        self.crls: dict[str, bytes] = {}
        self.requests: list[str] = []
        self.answers: list[bytes] = []
        self.responder_port = 0
        self.fault: str | None = None
        self.delay = 0.0
        self.replay: bytes | None = None
        self.swap_request: bytes | None = None
        threading.Thread(target=self.serve_forever, daemon=True).start()

    def publish(self, name: str, crl: bytes) -> None:
        with self.lock:
            self.crls[f"/crl/{name}"] = crl

    def ocsp_requests(self) -> int:
        with self.lock:
            return sum(1 for p in self.requests if p.startswith("/ocsp/"))

    def crl_fetches(self, name: str) -> int:
        with self.lock:
            return sum(1 for p in self.requests if p == f"/crl/{name}")

    def clear_faults(self) -> None:
        with self.lock:
            self.fault, self.delay, self.replay, self.swap_request = None, 0.0, None, None

    def stop(self) -> None:
        self.shutdown()
        self.server_close()
