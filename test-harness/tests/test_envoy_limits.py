"""Envoy's own request checks in the shipped configurations (envoy/*.yaml), against hostile clients: its buffer
limit never answers a token request before the filter does, and header names with underscores, which many
application servers read as dashes (x_mtls_client_id as x-mtls-client-id), never reach the AS."""
import copy
import ssl

import pytest

from oauth_mtls_harness import client
from oauth_mtls_harness import envoy as envoy_mod
from oauth_mtls_harness.checks import assert_invalid_request
from oauth_mtls_harness.client import FORM, token_body
from test_failure_policy import H2

FILTER_MAX = 1048576               # the largest max_body_bytes the filter accepts (1 MiB)
HOSTILE_BODY = token_body("demo-client").encode() + b"&pad=" + b"x" * (FILTER_MAX // 2 * 3)   # ~1.5 MiB


def shipped_plugin(template: str = "direct-mtls.yaml", **changes) -> dict:
    plugin = envoy_mod.plugin_json(envoy_mod.load(template))
    plugin.update(changes)
    return plugin


def without_listener_buffer_limit(template: str) -> dict:
    """The shipped configuration as it was before the limit was set: Envoy's default (1 MiB) on the listener."""
    cfg = copy.deepcopy(envoy_mod.load(template))
    for listener in cfg["static_resources"]["listeners"]:
        listener.pop("per_connection_buffer_limit_bytes", None)
    return cfg


def sized_for_the_largest_body(template: str) -> dict:
    """The shipped configuration as a user raising max_body_bytes to its largest (1 MiB) must change it: each
    connection manager's HTTP/2 stream window, which is also the most Envoy buffers of an HTTP/2 request body,
    raised to max_body_bytes + 64 KiB like the listener's buffer limit (oauth-mtls lint warns otherwise)."""
    cfg = copy.deepcopy(envoy_mod.load(template))
    for listener in cfg["static_resources"]["listeners"]:
        for chain in listener["filter_chains"]:
            for f in chain["filters"]:
                f["typed_config"]["http2_protocol_options"]["initial_stream_window_size"] = FILTER_MAX + 65536
    return cfg


def chunked_token_request(port: int, body: bytes, chunk: int = 16384) -> client.Response:
    """POST /token over HTTP/1.1, Transfer-Encoding: chunked (no content-length), `chunk` bytes per chunk. Sending
    stops quietly if Envoy answers and closes first; the response is read either way."""
    test_id = client.new_test_id()
    head = (f"POST /token HTTP/1.1\r\nhost: localhost:{port}\r\nconnection: close\r\nx-test-id: {test_id}\r\n"
            f"content-type: {FORM}\r\ntransfer-encoding: chunked\r\n\r\n").encode()
    parts = [head] + [b"%x\r\n%s\r\n" % (len(body[i:i + chunk]), body[i:i + chunk])
                      for i in range(0, len(body), chunk)] + [b"0\r\n\r\n"]
    with client._connect(port, "dn-client", ["http/1.1"]) as s:
        try:
            for part in parts:
                s.sendall(part)
        except (OSError, ssl.SSLError):
            pass
        data = b""
        while not client._http1_complete(data):
            try:
                got = s.recv(65536)
            except (TimeoutError, ConnectionResetError, ssl.SSLEOFError):
                break
            if not got:
                break
            data += got
    return client._parse_http1(data, test_id)


def h2_token_request(port: int, body: bytes) -> client.Response:
    """POST /token over HTTP/2, the body in DATA frames as large as Envoy's windows allow (no content-length)."""
    conn = H2(port)
    try:
        return conn.response(conn.start("POST", "/token", [("content-type", FORM)], body))
    finally:
        conn.close()


def assert_filter_413(r: client.Response, upstream) -> None:
    """The filter's answer to a body over max_body_bytes: 413 with an RFC 6749 JSON error; the AS saw nothing."""
    assert_invalid_request(r, upstream, status=413)


# ------------------------------------------------------------------ the buffer limit


@pytest.mark.parametrize("send", [chunked_token_request, h2_token_request], ids=["http1-chunked", "http2"])
def test_a_body_over_the_largest_max_body_bytes_gets_the_filters_json_413_not_envoys(send, envoy_with, upstream):
    e = envoy_with(shipped_plugin(max_body_bytes=FILTER_MAX), name="max-body-1mib",
                   template=sized_for_the_largest_body("direct-mtls.yaml"))
    assert_filter_413(send(e.port, HOSTILE_BODY), upstream)


def test_with_the_shipped_http2_stream_window_a_1_mib_max_body_bytes_gets_envoys_413_over_http2(envoy_with, upstream):
    """Why the HTTP/2 stream window follows max_body_bytes: Envoy buffers an HTTP/2 request body only up to the
    stream window (128 KiB shipped, for max_body_bytes 64 KiB), so with max_body_bytes raised alone Envoy answers
    first, with its text/plain 413 (`oauth-mtls lint` warns about exactly this)."""
    e = envoy_with(shipped_plugin(max_body_bytes=FILTER_MAX), name="max-body-1mib-shipped-window")
    r = h2_token_request(e.port, HOSTILE_BODY)
    assert r.status == 413 and (r.header("content-type") or "").startswith("text/plain"), r
    assert upstream.find(r.test_id) == []


@pytest.mark.parametrize("send", [chunked_token_request, h2_token_request], ids=["http1-chunked", "http2"])
def test_behind_a_front_proxy_a_body_over_the_largest_max_body_bytes_gets_the_filters_json_413(send, front_proxy_with,
                                                                                            upstream):
    front, _ = front_proxy_with(shipped_plugin("behind-front-proxy.yaml", max_body_bytes=FILTER_MAX))
    assert_filter_413(send(front.port, HOSTILE_BODY), upstream)


def test_a_body_of_exactly_the_largest_max_body_bytes_reaches_the_as(envoy_with, upstream):
    e = envoy_with(shipped_plugin(max_body_bytes=FILTER_MAX), name="max-body-1mib")
    body = token_body("demo-client").encode() + b"&pad="
    body += b"x" * (FILTER_MAX - len(body))
    r = chunked_token_request(e.port, body)
    assert r.status == 200, r
    (seen,) = upstream.find(r.test_id)
    assert len(seen.body) == FILTER_MAX and seen.headers.get("x-mtls-client-id") == ["demo-client"], seen.headers


def test_without_the_listener_limit_envoy_answers_first_with_its_own_text_413(envoy_with, upstream):
    """Why the limit is set: with Envoy's default (1 MiB) the same chunked HTTP/1.1 body gets Envoy's text/plain
    413, which a client's OAuth library cannot read as an RFC 6749 error. (Over HTTP/2, in DATA frames of at most
    16 KiB, Envoy 1.40 let the filter answer first even at the default.)"""
    e = envoy_with(shipped_plugin(max_body_bytes=FILTER_MAX), name="default-buffer-limit",
                   template=without_listener_buffer_limit("direct-mtls.yaml"))
    r = chunked_token_request(e.port, HOSTILE_BODY)
    print(f"Envoy's default buffer limit: {r.status} {r.header('content-type')} {r.body[:80]!r}")
    assert r.status == 413 and (r.header("content-type") or "").startswith("text/plain"), r
    assert upstream.find(r.test_id) == []


# ------------------------------------------------------------------ header names with underscores

# The filter's annotations, spelled with underscores: an AS behind CGI/WSGI/Rack/PHP reads them as its own.
UNDERSCORED = [("x_mtls_client_id", "victim"), ("x_mtls_auth_method", "tls_client_auth"),
               ("client_cert", ":c3Bvb2ZlZA==:")]


def without_underscore_action(template: str) -> dict:
    """The shipped configuration with Envoy's default for header names with underscores (ALLOW)."""
    cfg = copy.deepcopy(envoy_mod.load(template))
    for listener in cfg["static_resources"]["listeners"]:
        for chain in listener["filter_chains"]:
            for f in chain["filters"]:
                f["typed_config"].pop("common_http_protocol_options", None)
    return cfg


def shipped_deployment(which: str, envoy_with, front_proxy_with):
    """(port clients connect to, the Envoy whose HTTP connection manager they reach first)."""
    if which == "direct":
        e = envoy_with(None, name="shipped-direct")
        return e.port, e
    front, _ = front_proxy_with(None)
    return front.port, front


@pytest.mark.parametrize("which", ["direct", "front-proxy"])
@pytest.mark.parametrize("path", ["/token", "/userinfo"])
def test_http1_underscored_annotations_are_refused_with_400_and_never_reach_the_as(which, path, envoy_with,
                                                                                   front_proxy_with, upstream):
    port, edge = shipped_deployment(which, envoy_with, front_proxy_with)
    rejected = edge.stat_prefix_sum("requests_rejected_with_underscores_in_headers")
    r = client.token_request(port, "dn-client", "demo-client", path=path, headers=UNDERSCORED)
    assert r.status == 400, r
    assert upstream.find(r.test_id) == [], "a request with underscored annotations reached the AS"
    assert edge.stat_prefix_sum("requests_rejected_with_underscores_in_headers") == rejected + 1


@pytest.mark.parametrize("which", ["direct", "front-proxy"])
@pytest.mark.parametrize("path", ["/token", "/userinfo"])
def test_http2_underscored_annotations_are_refused_and_never_reach_the_as(which, path, envoy_with, front_proxy_with,
                                                                          upstream):
    """Over HTTP/2 Envoy resets the stream (no response) instead of answering 400."""
    port, _ = shipped_deployment(which, envoy_with, front_proxy_with)
    r = client.h2_request(port, "POST", path, [("content-type", FORM)] + UNDERSCORED,
                          [token_body("demo-client").encode()], "dn-client")
    assert r.status in (0, 400), r
    assert upstream.find(r.test_id) == [], "a request with underscored annotations reached the AS"


def test_with_envoys_default_underscored_annotations_pass_envoy(envoy_with, upstream):
    """Why the shipped configs refuse them: with Envoy's default (ALLOW) Envoy itself passes them on as sent
    (shown without the filter, so only Envoy's part is tested)."""
    e = envoy_with(None, template=without_underscore_action("direct-mtls.yaml"), with_filter=False,
                   name="underscores-allowed")
    r = client.token_request(e.port, "dn-client", "demo-client", path="/userinfo", headers=UNDERSCORED)
    assert r.status == 200, r
    (seen,) = upstream.find(r.test_id)
    assert seen.headers.get("x_mtls_client_id") == ["victim"], seen.headers


@pytest.mark.parametrize("path", ["/token", "/userinfo"])
def test_with_envoys_default_the_filter_itself_strips_underscored_annotations(path, envoy_with, upstream):
    """Defence in depth, for deployments whose connection manager allows underscores (Envoy's and Istio's
    default): the filter removes x_mtls_client_id & co. like their dashed forms."""
    e = envoy_with(None, template=without_underscore_action("direct-mtls.yaml"), name="underscores-allowed-filter")
    r = client.token_request(e.port, "dn-client", "demo-client", path=path, headers=UNDERSCORED)
    for seen in upstream.find(r.test_id):
        leaked = {k for k in seen.headers if "_" in k and k.replace("_", "-") in
                  {"x-mtls-client-id", "x-mtls-auth-method", "client-cert"}}
        assert not leaked, f"underscored annotations reached the AS: {leaked}"
