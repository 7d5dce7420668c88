"""Assertions shared by the integration tests: what an authenticated, a rejected and a passed request
look like at the client and at the authorization server (the echo upstream); what a refused API request
(RFC 6750 invalid_token) looks like."""
from __future__ import annotations

import base64
import re
import urllib.parse

from oauth_mtls_harness import pki
from oauth_mtls_harness.client import Response, token_body

# Headers the filter produces and strips from every inbound request (README).
FILTER_HEADERS = ("client-cert", "client-cert-chain", "x-mtls-client-id", "x-mtls-auth-method", "x-mtls-x5t-s256")
SPOOFED = [
    ("x-mtls-client-id", "spoofed-client"),
    ("x-mtls-auth-method", "tls_client_auth"),
    ("x-mtls-x5t-s256", "c3Bvb2ZlZA"),
    ("client-cert", ":c3Bvb2ZlZA==:"),
    ("client-cert-chain", ":c3Bvb2ZlZA==:"),
]


def tls_client(client_id: str, **metadata) -> dict:
    """An RFC 7591 registration with token_endpoint_auth_method tls_client_auth; metadata are the
    tls_client_auth_* fields without the prefix, e.g. tls_client(id, subject_dn="CN=...")."""
    reg = {"client_id": client_id, "token_endpoint_auth_method": "tls_client_auth"}
    reg.update({f"tls_client_auth_{k}": v for k, v in metadata.items()})
    return reg


def self_signed_client(client_id: str, *, jwks: dict | None = None, jwks_uri: str | None = None) -> dict:
    reg = {"client_id": client_id, "token_endpoint_auth_method": "self_signed_tls_client_auth"}
    if jwks is not None:
        reg["jwks"] = jwks
    if jwks_uri is not None:
        reg["jwks_uri"] = jwks_uri
    return reg


def decode_forwarded(value: str, fmt: str) -> bytes:
    """DER carried by a forward_certificate header value in format `fmt`."""
    if fmt == "rfc9440":
        assert value.startswith(":") and value.endswith(":"), f"not an RFC 9440 byte sequence: {value[:60]!r}"
        return base64.b64decode(value[1:-1], validate=True)
    if fmt == "pem":
        return pki.pem_to_der(value)
    if fmt == "pem-urlencoded":
        decoded = urllib.parse.unquote(value)
        assert "BEGIN CERTIFICATE" in decoded, f"not a URL-encoded PEM: {value[:60]!r}"
        return pki.pem_to_der(decoded)
    if fmt == "base64-der":
        return base64.b64decode(value, validate=True)
    raise ValueError(fmt)


def assert_authenticated(resp: Response, upstream, client_id: str, cert: str, *,
                         method: str = "tls_client_auth", header: str = "client-cert", fmt: str = "rfc9440",
                         body: str | None = None):
    """200 from the AS, which saw exactly one copy of each annotation, describing `cert`, and the form body
    unchanged."""
    assert resp.status == 200, f"expected the request to reach the AS, got {resp!r}"
    seen = upstream.find(resp.test_id)
    assert len(seen) == 1, f"AS saw {len(seen)} copies of the request"
    (req,) = seen
    assert req.headers.get("x-mtls-client-id") == [client_id], req.headers
    assert req.headers.get("x-mtls-auth-method") == [method], req.headers
    assert req.headers.get("x-mtls-x5t-s256") == [pki.x5t_s256(cert)], req.headers
    values = req.headers.get(header.lower())
    assert values and len(values) == 1, f"expected one {header} header at the AS, got {values!r}"
    assert decode_forwarded(values[0], fmt) == pki.der(cert), f"{header} does not carry {cert}'s DER"
    expected_body = token_body(client_id) if body is None else body
    assert req.body == expected_body, f"form body changed on the way: {req.body!r}"
    return req


def assert_invalid_client(resp: Response, upstream, *keywords: str) -> dict:
    """401 invalid_client in RFC 6749 §5.2 form, description containing every keyword (case-insensitive),
    and the AS never saw the request."""
    assert resp.status == 401, f"expected 401 invalid_client, got {resp!r}"
    doc = _assert_error_shape(resp, "invalid_client")
    for kw in keywords:
        assert kw.lower() in doc["error_description"].lower(), \
            f"error_description {doc['error_description']!r} lacks {kw!r}"
    assert upstream.find(resp.test_id) == [], "a rejected request reached the AS"
    return doc


def assert_invalid_request(resp: Response, upstream, status: int = 400) -> dict:
    assert resp.status == status, f"expected {status} invalid_request, got {resp!r}"
    doc = _assert_error_shape(resp, "invalid_request")
    assert upstream.find(resp.test_id) == [], "a rejected request reached the AS"
    return doc


def _assert_error_shape(resp: Response, error: str) -> dict:
    ct = resp.header("content-type") or ""
    assert ct.split(";")[0].strip().lower() == "application/json", f"content-type {ct!r}"
    assert "no-store" in (resp.header("cache-control") or "").lower(), resp.headers
    doc = resp.json()
    assert doc.get("error") == error, doc
    desc = doc.get("error_description")
    assert isinstance(desc, str) and desc, doc
    assert not any(c in desc for c in "\r\n\t"), f"control characters in error_description: {desc!r}"
    return doc


def assert_passed_without_annotation(resp: Response, upstream, extra_headers: tuple[str, ...] = ()):
    """The request reached the AS once, carrying none of the filter's headers (spoofed ones included)."""
    assert resp.status == 200, f"expected the request to pass to the AS, got {resp!r}"
    seen = upstream.find(resp.test_id)
    assert len(seen) == 1, f"AS saw {len(seen)} copies of the request"
    (req,) = seen
    for h in FILTER_HEADERS + tuple(h.lower() for h in extra_headers):
        assert h not in req.headers, f"{h} reached the AS on a request the filter did not authenticate: {req.headers}"
    return req


def www_authenticate_params(value: str) -> dict[str, str]:
    """The auth-params of a `Bearer ...` challenge (RFC 6750 §3), quoted values unquoted."""
    scheme, _, rest = value.partition(" ")
    assert scheme.lower() == "bearer", f"not a Bearer challenge: {value!r}"
    return {m.group(1).lower(): m.group(2).replace('\\"', '"').replace("\\\\", "\\")
            for m in re.finditer(r'([A-Za-z_]+)="((?:[^"\\]|\\.)*)"', rest)}


def assert_invalid_token(resp: Response, api, *keywords: str) -> dict[str, str]:
    """401 with `WWW-Authenticate: Bearer error="invalid_token", error_description="..."` (RFC 6750 §3)
    whose description contains every keyword (case-insensitive), and the API never saw the request."""
    assert resp.status == 401, f"expected 401 invalid_token, got {resp!r}"
    challenge = resp.header("www-authenticate")
    assert challenge, f"no WWW-Authenticate on a 401: {resp!r}"
    params = www_authenticate_params(challenge)
    assert params.get("error") == "invalid_token", challenge
    desc = params.get("error_description", "")
    for kw in keywords:
        assert kw.lower() in desc.lower(), f"error_description {desc!r} lacks {kw!r}"
    assert not any(c in challenge for c in "\r\n"), challenge
    assert api.find(resp.test_id) == [], "a rejected request reached the API"
    return params
