"""Test PKI for the integration tests and the demo, built with the openssl CLI.

Everything lands in $OAUTH_MTLS_BUILD/pki (default: <repo>/build/pki). `ensure_pki()` is idempotent: it
rebuilds the whole directory when any expected file is missing or the layout version changed.

Files (each certificate NAME has NAME.pem and NAME.key):
  ca1.pem / ca2.pem        two trusted root CAs;  ca.pem = ca1.pem + ca2.pem (the trust bundle Envoy uses)
  rogue.pem                a CA nobody trusts
  rogue-ca1.pem            a CA nobody trusts, with ca1's subject (its name, another key)
  server                   localhost, 127.0.0.1, ::1 (CA1), used by every Envoy listener
  dn-client                CA1, C=GB,O=Example Bank,OU=Payments,CN=dn-client
  dn-client-ca2            CA2, the same subject
  dn-client-rogue          rogue CA, the same subject
  dn-client-rogue-ca1      rogue-ca1, the same subject (issuer name = ca1's; signed by another key)
  other-client             CA1, C=GB,O=Example Bank,CN=other-client
  multi-rdn-client         CA1, C=GB,O=Example Bank,(OU=Payments + CN=multi-rdn-client) multi-valued RDN
  special-dn-client        CA1, CN containing , + " \\ ; =
  san-dns-client           CA1, DNS:first.example.com, DNS:client.example.com
  san-ip-client            CA1, IP:10.1.2.3, IP:2001:db8::1
  san-uri-client           CA1 (EC key), URI:spiffe://example.org/client
  san-email-client         CA1, email:Ops@Example.com
  self-signed-1            self-signed RSA
  self-signed-2            self-signed EC P-256
  forwarder                CA1, URI:spiffe://example.org/front-proxy (front proxy identity)
  untrusted-forwarder      CA1, URI:spiffe://example.org/somebody-else
  attacker-self-signed     self-signed, C=GB,O=Example Bank,CN=other-client (claims other-client's DN)
  dn-injection-client      CA1, C=GB,O=Example Bank,CN="dn-client,OU=Payments" (naively printed: dn-client's DN)
  lookalike-dn-client      CA1, dn-client's DN with a Cyrillic U+0430 in place of the Latin 'a' of "Bank"
  xfcc-injection-client    CA1, CN containing `";Cert="` (XFCC Subject= injection through a front proxy)
  nul-dn-client            CA1, dn-client's DN with CN "dn-client<NUL>" (U+0000 in a UTF8String)
  nul-suffix-dn-client     CA1, dn-client's DN with CN "dn-client<NUL>.evil.example"
Chain files (leaf first; the key is the leaf's):
  other-client-with-dn-client-appended.pem    other-client + dn-client-rogue
  dn-client-with-attacker-appended.pem        dn-client + attacker-self-signed
  attacker-with-dn-client-appended.pem        attacker-self-signed + dn-client
  self-signed-2-with-self-signed-1-appended.pem
"""
from __future__ import annotations

import base64
import hashlib
import os
import pathlib
import re
import shutil
import subprocess
import tempfile

from oauth_mtls_harness import REPO

LAYOUT_VERSION = "5"

# RFC 4514 string of the CN of special-dn-client (as the filter should see it; the cert holds the raw value).
SPECIAL_CN_RAW = 'Widget, Inc. + "Q" \\ x; y = z'
SPECIAL_DN_RFC4514 = 'CN=Widget\\, Inc. \\+ \\"Q\\" \\\\ x\\; y \\= z,O=Example Bank,C=GB'

DN_CLIENT_RFC4514 = "CN=dn-client,OU=Payments,O=Example Bank,C=GB"
# dn-client's DN with U+0430 CYRILLIC SMALL LETTER A in "Bank" (lookalike-dn-client's subject).
LOOKALIKE_DN_RFC4514 = "CN=dn-client,OU=Payments,O=Example B\u0430nk,C=GB"
XFCC_INJECTION_CN = 'x";Cert="junk";Hash="00'


def build_dir() -> pathlib.Path:
    return pathlib.Path(os.environ.get("OAUTH_MTLS_BUILD", str(REPO / "build"))).resolve()


def pki_dir() -> pathlib.Path:
    return build_dir() / "pki"


# name -> (issuer or None for self-signed, key type, -subj string, extensions)
CLIENT_EXT = "basicConstraints=critical,CA:FALSE\nextendedKeyUsage=clientAuth\n"
CA_EXT = "basicConstraints=critical,CA:TRUE\nkeyUsage=critical,keyCertSign,cRLSign\nsubjectKeyIdentifier=hash\n"

CAS = {
    "ca1": "/C=GB/O=Example Test PKI/CN=Test Root CA 1",
    "ca2": "/C=GB/O=Example Test PKI/CN=Test Root CA 2",
    "rogue": "/C=GB/O=Rogue Inc/CN=Rogue Root CA",
    "rogue-ca1": "/C=GB/O=Example Test PKI/CN=Test Root CA 1",
}

LEAVES = {
    "server": ("ca1", "rsa", "/CN=localhost",
               "basicConstraints=critical,CA:FALSE\nextendedKeyUsage=serverAuth,clientAuth\n"
               "subjectAltName=DNS:localhost,IP:127.0.0.1,IP:::1\n"),
    "dn-client": ("ca1", "rsa", "/C=GB/O=Example Bank/OU=Payments/CN=dn-client", CLIENT_EXT),
    "dn-client-ca2": ("ca2", "rsa", "/C=GB/O=Example Bank/OU=Payments/CN=dn-client", CLIENT_EXT),
    "dn-client-rogue": ("rogue", "rsa", "/C=GB/O=Example Bank/OU=Payments/CN=dn-client", CLIENT_EXT),
    "dn-client-rogue-ca1": ("rogue-ca1", "rsa", "/C=GB/O=Example Bank/OU=Payments/CN=dn-client", CLIENT_EXT),
    "other-client": ("ca1", "rsa", "/C=GB/O=Example Bank/CN=other-client", CLIENT_EXT),
    "multi-rdn-client": ("ca1", "rsa", "/C=GB/O=Example Bank/OU=Payments+CN=multi-rdn-client", CLIENT_EXT),
    # openssl -subj: '/' and '+' are separators and must be escaped with '\'; '\' escapes itself.
    "special-dn-client": ("ca1", "rsa",
                          '/C=GB/O=Example Bank/CN=Widget, Inc. \\+ "Q" \\\\ x; y = z', CLIENT_EXT),
    "san-dns-client": ("ca1", "rsa", "/O=Example Bank/CN=san-dns-client",
                       CLIENT_EXT + "subjectAltName=DNS:first.example.com,DNS:client.example.com\n"),
    "san-ip-client": ("ca1", "rsa", "/O=Example Bank/CN=san-ip-client",
                      CLIENT_EXT + "subjectAltName=IP:10.1.2.3,IP:2001:db8::1\n"),
    "san-uri-client": ("ca1", "ec", "/O=Example Bank/CN=san-uri-client",
                       CLIENT_EXT + "subjectAltName=URI:spiffe://example.org/client\n"),
    "san-email-client": ("ca1", "rsa", "/O=Example Bank/CN=san-email-client",
                         CLIENT_EXT + "subjectAltName=email:Ops@Example.com\n"),
    "self-signed-1": (None, "rsa", "/O=Self Signed Co/CN=self-signed-1", CLIENT_EXT),
    "self-signed-2": (None, "ec", "/O=Self Signed Co/CN=self-signed-2", CLIENT_EXT),
    "forwarder": ("ca1", "rsa", "/O=Example Infra/CN=front-proxy",
                  "basicConstraints=critical,CA:FALSE\nextendedKeyUsage=clientAuth,serverAuth\n"
                  "subjectAltName=URI:spiffe://example.org/front-proxy\n"),
    "untrusted-forwarder": ("ca1", "rsa", "/O=Example Infra/CN=somebody-else",
                            "basicConstraints=critical,CA:FALSE\nextendedKeyUsage=clientAuth,serverAuth\n"
                            "subjectAltName=URI:spiffe://example.org/somebody-else\n"),
    # ---- attack matrix (tests/test_attacks.py)
    "attacker-self-signed": (None, "rsa", "/C=GB/O=Example Bank/CN=other-client", CLIENT_EXT),
    "dn-injection-client": ("ca1", "rsa", "/C=GB/O=Example Bank/CN=dn-client,OU=Payments", CLIENT_EXT),
    "lookalike-dn-client": ("ca1", "rsa", "/C=GB/O=Example B\u0430nk/OU=Payments/CN=dn-client", CLIENT_EXT),
    "xfcc-injection-client": ("ca1", "rsa", "/C=GB/O=Example Bank/CN=" + XFCC_INJECTION_CN, CLIENT_EXT),
    # NUL cannot pass through argv: issued with a placeholder byte, then patched to U+0000 and re-signed.
    "nul-dn-client": ("ca1", "rsa", "/C=GB/O=Example Bank/OU=Payments/CN=dn-client@", CLIENT_EXT),
    "nul-suffix-dn-client": ("ca1", "rsa", "/C=GB/O=Example Bank/OU=Payments/CN=dn-client@.evil.example",
                             CLIENT_EXT),
}

# leaf -> (placeholder in its issued CN, the bytes that replace it); see _patch_and_resign.
NUL_PATCHES = {
    "nul-dn-client": (b"dn-client@", b"dn-client\x00"),
    "nul-suffix-dn-client": (b"dn-client@.evil.example", b"dn-client\x00.evil.example"),
}

# name -> (leaf, certificates appended after it)
CHAINS = {
    "other-client-with-dn-client-appended": ("other-client", ["dn-client-rogue"]),
    "dn-client-with-attacker-appended": ("dn-client", ["attacker-self-signed"]),
    "attacker-with-dn-client-appended": ("attacker-self-signed", ["dn-client"]),
    "self-signed-2-with-self-signed-1-appended": ("self-signed-2", ["self-signed-1"]),
}

CERT_NAMES = list(CAS) + list(LEAVES)


def _openssl(*args: str, cwd: pathlib.Path) -> None:
    proc = subprocess.run(["openssl", *args], cwd=cwd, capture_output=True, text=True)
    if proc.returncode != 0:
        raise RuntimeError(f"openssl {' '.join(args)} failed:\n{proc.stderr}")


def _genkey(path: pathlib.Path, kind: str) -> None:
    if kind == "rsa":
        _openssl("genpkey", "-algorithm", "RSA", "-pkeyopt", "rsa_keygen_bits:2048", "-out", path.name,
                 cwd=path.parent)
    else:
        _openssl("genpkey", "-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-256", "-out", path.name,
                 cwd=path.parent)


def _build(d: pathlib.Path) -> None:
    for name, subj in CAS.items():
        _genkey(d / f"{name}.key", "rsa")
        _openssl("req", "-new", "-x509", "-key", f"{name}.key", "-subj", subj, "-days", "3650", "-sha256",
                 "-set_serial", "1", "-config", str(_req_config(d, name, CA_EXT)), "-extensions", "v3",
                 "-out", f"{name}.pem", cwd=d)
    serial = 100
    for name, (issuer, kind, subj, ext) in LEAVES.items():
        serial += 1
        _genkey(d / f"{name}.key", kind)
        ext_file = d / f"{name}.ext"
        ext_file.write_text("[v3]\n" + ext)
        if issuer is None:
            _openssl("req", "-new", "-x509", "-key", f"{name}.key", "-subj", subj, "-days", "3650", "-sha256",
                     "-set_serial", str(serial), "-config", str(_req_config(d, name, ext)), "-extensions", "v3",
                     "-out", f"{name}.pem", cwd=d)
        else:
            utf8 = [] if subj.isascii() else ["-utf8"]
            _openssl("req", "-new", "-key", f"{name}.key", "-subj", subj, *utf8, "-out", f"{name}.csr", cwd=d)
            _openssl("x509", "-req", "-in", f"{name}.csr", "-CA", f"{issuer}.pem", "-CAkey", f"{issuer}.key",
                     "-set_serial", str(serial), "-days", "3650", "-sha256", "-extfile", f"{name}.ext",
                     "-extensions", "v3", "-out", f"{name}.pem", cwd=d)
        if name in NUL_PATCHES:
            _patch_and_resign(d / f"{name}.pem", d / f"{issuer}.key", *NUL_PATCHES[name])
    (d / "ca.pem").write_text((d / "ca1.pem").read_text() + (d / "ca2.pem").read_text())
    # Chain files: a leaf followed by certificates carrying other clients' subjects. Only the leaf may be
    # matched (Keycloak CVE-2023-2422 class).
    for chain, (leaf, rest) in CHAINS.items():
        (d / f"{chain}.pem").write_text("".join((d / f"{n}.pem").read_text() for n in [leaf, *rest]))
    for p in d.glob("*.key"):
        p.chmod(0o600)
    (d / "VERSION").write_text(LAYOUT_VERSION)


def _der_len(data: bytes, i: int) -> tuple[int, int]:
    """(length, offset of the content) of the DER TLV whose tag is at data[i]."""
    first = data[i + 1]
    if first < 0x80:
        return first, i + 2
    n = first & 0x7F
    return int.from_bytes(data[i + 2:i + 2 + n], "big"), i + 2 + n


def _patch_and_resign(cert: pathlib.Path, ca_key: pathlib.Path, old: bytes, new: bytes) -> None:
    """Replace `old` by `new` (same length) inside the TBSCertificate of `cert` and sign it again with
    `ca_key` (sha256WithRSAEncryption, as issued). For values openssl's -subj cannot express (NUL)."""
    assert len(old) == len(new)
    der = pem_to_der(cert.read_text())
    _, tbs_at = _der_len(der, 0)
    tbs_len, tbs_content = _der_len(der, tbs_at)
    tbs_end = tbs_content + tbs_len
    tbs = der[tbs_at:tbs_end]
    assert tbs.count(old) == 1, f"placeholder {old!r} not unique in {cert.name}"
    tbs = tbs.replace(old, new)
    sig = subprocess.run(["openssl", "dgst", "-sha256", "-sign", str(ca_key)], input=tbs, capture_output=True,
                         check=True).stdout
    alg_len, alg_content = _der_len(der, tbs_end)
    alg = der[tbs_end:alg_content + alg_len]
    bits = b"\x00" + sig
    body = tbs + alg + b"\x03" + _der_encode_len(len(bits)) + bits
    out = b"\x30" + _der_encode_len(len(body)) + body
    b64 = base64.b64encode(out).decode()
    cert.write_text("-----BEGIN CERTIFICATE-----\n" + "\n".join(b64[i:i + 64] for i in range(0, len(b64), 64))
                    + "\n-----END CERTIFICATE-----\n")


def _der_encode_len(n: int) -> bytes:
    if n < 0x80:
        return bytes([n])
    raw = n.to_bytes((n.bit_length() + 7) // 8, "big")
    return bytes([0x80 | len(raw)]) + raw


def _req_config(d: pathlib.Path, name: str, ext: str) -> pathlib.Path:
    """A minimal `openssl req` config for self-signed leaves (so their extensions are set)."""
    p = d / f"{name}.req.cnf"
    p.write_text("[req]\ndistinguished_name=dn\nx509_extensions=v3\n[dn]\n[v3]\n" + ext)
    return p


def _complete(d: pathlib.Path) -> bool:
    if not (d / "VERSION").is_file() or (d / "VERSION").read_text().strip() != LAYOUT_VERSION:
        return False
    files = ["ca.pem"] + [f"{n}.pem" for n in CERT_NAMES] + [f"{n}.key" for n in CERT_NAMES] + \
        [f"{n}.pem" for n in CHAINS]
    return all((d / f).is_file() for f in files)


def ensure_pki() -> pathlib.Path:
    """Build the PKI if it is missing or incomplete; return its directory."""
    d = pki_dir()
    if _complete(d):
        return d
    d.parent.mkdir(parents=True, exist_ok=True)
    tmp = pathlib.Path(tempfile.mkdtemp(prefix="pki.", dir=d.parent))
    try:
        _build(tmp)
        if d.exists():
            shutil.rmtree(d)
        tmp.rename(d)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
    return d


# ---------------------------------------------------------------- helpers on the generated files

# Every helper builds the PKI first if needed: test modules read certificates at import (collection) time,
# which on a fresh clone comes before any fixture has run.

def cert_path(name: str) -> pathlib.Path:
    return ensure_pki() / f"{name}.pem"


def key_path(name: str) -> pathlib.Path:
    return ensure_pki() / f"{name}.key"


def pem(name: str) -> str:
    """The PEM of the first certificate in NAME.pem."""
    text = cert_path(name).read_text()
    end = "-----END CERTIFICATE-----"
    return text[: text.index(end) + len(end)] + "\n"


def der(name: str) -> bytes:
    body = "".join(line for line in pem(name).splitlines() if line and not line.startswith("-----"))
    return base64.b64decode(body)


def pem_to_der(text: str) -> bytes:
    """DER of a PEM given with or without BEGIN/END markers, with line breaks, spaces or neither."""
    body = re.sub(r"-----(BEGIN|END) [A-Z0-9 ]+-----", "", text)
    return base64.b64decode("".join(body.split()), validate=True)


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def x5t_s256(name: str) -> str:
    """RFC 8705 §3.1 thumbprint: base64url(SHA-256(DER)), no padding."""
    return b64url(hashlib.sha256(der(name)).digest())


def sha256_hex(name: str) -> str:
    return hashlib.sha256(der(name)).hexdigest()


def rfc9440(name: str) -> str:
    return ":" + base64.b64encode(der(name)).decode() + ":"


def _spki_der(name: str) -> bytes:
    out = subprocess.run(["openssl", "x509", "-in", str(cert_path(name)), "-noout", "-pubkey"],
                         capture_output=True, text=True, check=True).stdout
    return pem_to_der(out)


def jwk_with_x5c(name: str) -> dict:
    """A public JWK for NAME's key with x5c = [base64 DER] (RFC 7517 §4.7) and kid = its x5t#S256."""
    jwk: dict = {}
    spki = _spki_der(name)
    text = subprocess.run(["openssl", "x509", "-in", str(cert_path(name)), "-noout", "-text"],
                          capture_output=True, text=True, check=True).stdout
    if "rsaEncryption" in text:
        mod = subprocess.run(["openssl", "x509", "-in", str(cert_path(name)), "-noout", "-modulus"],
                             capture_output=True, text=True, check=True).stdout.strip().split("=", 1)[1]
        jwk = {"kty": "RSA", "n": b64url(bytes.fromhex(mod)), "e": "AQAB"}
    else:
        point = spki[-65:]  # P-256 SPKI ends with the uncompressed point 04 || x || y
        assert point[0] == 4
        jwk = {"kty": "EC", "crv": "P-256", "x": b64url(point[1:33]), "y": b64url(point[33:65])}
    jwk.update({"use": "sig", "kid": x5t_s256(name), "x5c": [base64.b64encode(der(name)).decode()],
                "x5t#S256": x5t_s256(name)})
    return jwk


def jwks(*names: str) -> dict:
    return {"keys": [jwk_with_x5c(n) for n in names]}


if __name__ == "__main__":
    print(ensure_pki())
