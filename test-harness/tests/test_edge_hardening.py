"""The shipped configurations (envoy/*.yaml, envoy/istio/**) as production edges: Envoy's edge-proxy practices
("Configuring Envoy as an edge proxy") and the FAPI TLS profile (docs/edge-hardening.md), each checked in a real
Envoy 1.40 against a hostile client, and every shipped file checked for every setting, so that a new one cannot
ship without them.

Where a shipped value is too long for a test (request_headers_timeout 10 s, 10,000 connections) the test renders
the shipped file with a smaller value through the same render path, and asserts the shipped value separately.
"""
from __future__ import annotations

import copy
import json
import pathlib
import re
import ssl
import subprocess
import threading
import time

import pytest
import yaml

from oauth_mtls_harness import client, pki
from oauth_mtls_harness import envoy as envoy_mod
from oauth_mtls_harness.checks import assert_authenticated
from oauth_mtls_harness.client import FORM, token_body
from test_failure_policy import H2

REPO = envoy_mod.REPO
ISTIO_DIR = envoy_mod.ENVOY_DIR / "istio"
CLI = REPO / "target" / "release" / "oauth-mtls"
HCM = "envoy.filters.network.http_connection_manager"
YAMLS = sorted(p.name for p in envoy_mod.ENVOY_DIR.glob("*.yaml"))
ISTIO_FILES = sorted(p.relative_to(ISTIO_DIR).as_posix() for p in ISTIO_DIR.rglob("*.yaml"))

FILTER_MAX_BODY = 1048576          # the largest max_body_bytes the filter accepts
BUFFER_HEADROOM = 65536            # what Envoy needs above the body it buffers (oauth-mtls lint's rule)
# The FAPI TLS profile: TLS 1.2 suites (BoringSSL names). The RSA pair is FAPI 1.0 Advanced §8.5's (its DHE
# suites do not exist in BoringSSL); the ECDSA pair is RFC 9325 §4.2's (FAPI 2.0) for ECDSA server keys.
FAPI_SUITES = ["ECDHE-ECDSA-AES128-GCM-SHA256", "ECDHE-RSA-AES128-GCM-SHA256",
               "ECDHE-ECDSA-AES256-GCM-SHA384", "ECDHE-RSA-AES256-GCM-SHA384"]
# What the access log must say about each request (Envoy command operators).
ACCESS_LOG_FIELDS = ["%RESPONSE_CODE%", "%RESPONSE_CODE_DETAILS%", "%REQ(X-REQUEST-ID)%",
                     "%DOWNSTREAM_PEER_FINGERPRINT_256%", "%PATH(NQ)%", "%DURATION%"]


# ------------------------------------------------------------------------------------------ helpers

def listeners(cfg: dict) -> list[dict]:
    return cfg["static_resources"]["listeners"]


def hcms(cfg: dict) -> list[dict]:
    return [f["typed_config"] for listener in listeners(cfg) for chain in listener["filter_chains"]
            for f in chain["filters"] if f["name"] == HCM]


def downstream_tls(cfg: dict) -> list[dict]:
    return [chain["transport_socket"]["typed_config"] for listener in listeners(cfg)
            for chain in listener["filter_chains"]]


def seconds(duration: str) -> float:
    m = re.fullmatch(r"(\d+(?:\.\d+)?)s", duration)
    assert m, f"not a protobuf duration in seconds: {duration!r}"
    return float(m.group(1))


def shipped(name: str = "direct-mtls.yaml") -> dict:
    return copy.deepcopy(envoy_mod.load(name))


def monitor(cfg: dict, name: str) -> dict:
    (m,) = [m for m in cfg["overload_manager"]["resource_monitors"] if m["name"] == name]
    return m["typed_config"]


def with_hcm(name: str, **changes) -> dict:
    cfg = shipped(name)
    for hcm in hcms(cfg):
        hcm.update(changes)
    return cfg


def with_connection_limit(name: str, limit: int) -> dict:
    cfg = shipped(name)
    monitor(cfg, "envoy.resource_monitors.global_downstream_max_connections")[
        "max_active_downstream_connections"] = limit
    return cfg


def without_tls_params(name: str) -> dict:
    cfg = shipped(name)
    for tls in downstream_tls(cfg):
        tls["common_tls_context"].pop("tls_params")
    return cfg


def access_log_lines(e: envoy_mod.Envoy) -> list[dict]:
    """The JSON access log lines Envoy wrote to stdout (envoy.out; its own log goes to envoy.log)."""
    out = []
    for line in e.out_path.read_text(errors="replace").splitlines():
        if line.startswith("{"):
            out.append(json.loads(line))
    return out


def access_log_line(e: envoy_mod.Envoy, request_id: str) -> dict:
    def find():
        return [x for x in access_log_lines(e) if x.get("request_id") == request_id]
    (line,) = envoy_mod.poll(find, timeout=10, what=f"the access log line of request {request_id}")
    return line


# ------------------------------------------------------------------------------------------ every shipped config

@pytest.mark.parametrize("name", YAMLS)
def test_every_shipped_config_carries_the_edge_settings(name):
    """Envoy's edge guide and the FAPI TLS profile, in every envoy/*.yaml."""
    cfg = envoy_mod.load(name)
    om = cfg["overload_manager"]
    assert monitor(cfg, "envoy.resource_monitors.fixed_heap")["max_heap_size_bytes"] > 0
    assert monitor(cfg, "envoy.resource_monitors.global_downstream_max_connections")[
        "max_active_downstream_connections"] > 0
    actions = {a["name"]: [t["name"] for t in a["triggers"]] for a in om["actions"]}
    assert actions["envoy.overload_actions.shrink_heap"] == ["envoy.resource_monitors.fixed_heap"]
    assert actions["envoy.overload_actions.stop_accepting_requests"] == ["envoy.resource_monitors.fixed_heap"]

    plugins = [json.loads(f["typed_config"]["config"]["configuration"]["value"])
               for f in envoy_mod.wasm_filters(cfg)]
    for listener in listeners(cfg):
        # consistent with the filter's max_body_bytes: what the filter holds fits, at its largest too
        limit = listener["per_connection_buffer_limit_bytes"]
        assert limit >= FILTER_MAX_BODY + BUFFER_HEADROOM, listener["name"]
        assert all(limit >= p.get("max_body_bytes", FILTER_MAX_BODY) + BUFFER_HEADROOM for p in plugins)
        for chain in listener["filter_chains"]:
            assert seconds(chain["transport_socket_connect_timeout"]) > 0, listener["name"]
    for tls in downstream_tls(cfg):
        assert tls["common_tls_context"]["tls_params"] == {
            "tls_minimum_protocol_version": "TLSv1_2", "tls_maximum_protocol_version": "TLSv1_3",
            "cipher_suites": FAPI_SUITES}
    assert hcms(cfg)
    for hcm in hcms(cfg):
        for key in ("request_headers_timeout", "request_timeout", "stream_idle_timeout"):
            assert seconds(hcm[key]) > 0, key
        opts = hcm["common_http_protocol_options"]
        assert seconds(opts["idle_timeout"]) > 0
        assert opts["headers_with_underscores_action"] == "REJECT_REQUEST"
        h2 = hcm["http2_protocol_options"]
        assert h2["max_concurrent_streams"] == 100 and h2["initial_connection_window_size"] == 1048576
        # an HTTP/2 request body is buffered up to the stream window: it must hold what the filter holds
        assert all(h2["initial_stream_window_size"] >= p.get("max_body_bytes", 65536) + BUFFER_HEADROOM
                   for p in plugins)
        if hcm["forward_client_cert_details"] == "FORWARD_ONLY":
            # behind a front proxy: not the edge; the front proxy's XFF entry is the client's address
            assert hcm["use_remote_address"] is False and hcm["xff_num_trusted_hops"] == 0
        else:
            assert hcm["use_remote_address"] is True and hcm.get("xff_num_trusted_hops", 0) == 0
        (log,) = hcm["access_log"]
        assert log["name"] == "envoy.access_loggers.stdout"
        fields = json.dumps(log["typed_config"]["log_format"]["json_format"])
        assert all(f in fields for f in ACCESS_LOG_FIELDS), fields


def test_the_shipped_edge_values():
    """The values docs/edge-hardening.md documents (the hostile tests below render shorter or smaller ones)."""
    cfg = envoy_mod.load("direct-mtls.yaml")
    (hcm,) = hcms(cfg)
    assert (hcm["request_headers_timeout"], hcm["request_timeout"], hcm["stream_idle_timeout"]) == ("10s", "60s",
                                                                                                  "60s")
    assert hcm["common_http_protocol_options"]["idle_timeout"] == "300s"
    assert monitor(cfg, "envoy.resource_monitors.global_downstream_max_connections")[
        "max_active_downstream_connections"] == 10000
    assert monitor(cfg, "envoy.resource_monitors.fixed_heap")["max_heap_size_bytes"] == 2 * 1024 ** 3
    for name in YAMLS:  # one set of values for every deployment
        other = envoy_mod.load(name)
        assert other["overload_manager"] == cfg["overload_manager"], name
        for h in hcms(other):
            assert {k: h[k] for k in ("request_headers_timeout", "request_timeout", "stream_idle_timeout")} == {
                k: hcm[k] for k in ("request_headers_timeout", "request_timeout", "stream_idle_timeout")}, name


def istio_docs(rel: str) -> list[dict]:
    with open(ISTIO_DIR / rel) as f:
        return [d for d in yaml.safe_load_all(f) if d is not None]


def test_every_istio_manifest_carries_what_istio_lets_it_set():
    """Per envoy/istio file: the HTTP connection manager patches carry the edge settings, the Gateway the FAPI TLS
    profile; docs/istio.md says what Istio cannot set (the bootstrap's overload manager). Every file is one of
    these kinds, so a new manifest cannot ship unchecked."""
    checked = set()
    for rel in ISTIO_FILES:
        if all(d["kind"] in ("PeerAuthentication", "AuthorizationPolicy") for d in istio_docs(rel)):
            checked.add(rel)  # access policies only: no listener, nothing of the edge to carry
        for d in istio_docs(rel):
            if d["kind"] == "Gateway" and d["apiVersion"].startswith("gateway.networking.k8s.io/"):
                continue  # a Kubernetes Gateway API Gateway sets no TLS profile: its EnvoyFilter's tls_params do
            if d["kind"] == "Gateway":
                for server in d["spec"]["servers"]:
                    tls = server["tls"]
                    assert (tls["minProtocolVersion"], tls["maxProtocolVersion"]) == ("TLSV1_2", "TLSV1_3"), rel
                    assert tls["cipherSuites"] == FAPI_SUITES, rel
                checked.add(rel)
            if d["kind"] != "EnvoyFilter":
                continue
            for p in d["spec"]["configPatches"]:
                value = p["patch"]["value"]
                if p["applyTo"] == "NETWORK_FILTER" and value.get("name") == HCM:
                    hcm = value["typed_config"]
                    for key in ("request_headers_timeout", "request_timeout", "stream_idle_timeout"):
                        assert seconds(hcm[key]) > 0, (rel, key)
                    assert seconds(hcm["common_http_protocol_options"]["idle_timeout"]) > 0, rel
                    assert hcm["http2_protocol_options"]["max_concurrent_streams"] == 100, rel
                    assert "use_remote_address" in hcm, rel
                    fields = json.dumps(hcm["access_log"])
                    assert all(f in fields for f in ACCESS_LOG_FIELDS), rel
                    checked.add(rel)
                if p["applyTo"] == "FILTER_CHAIN" and p["match"]["context"] == "GATEWAY":
                    assert seconds(value["transport_socket_connect_timeout"]) > 0, rel
                    tls = value.get("transport_socket", {}).get("typed_config", {}).get("common_tls_context", {})
                    if "tls_params" in tls:
                        params = tls["tls_params"]
                        assert (params["tls_minimum_protocol_version"], params["tls_maximum_protocol_version"]) == (
                            "TLSv1_2", "TLSv1_3"), rel
                        assert params["cipher_suites"] == FAPI_SUITES, rel
                        checked.add(rel)
    unchecked = [rel for rel in ISTIO_FILES if rel not in checked and not rel.startswith("unsupported/")]
    assert not unchecked, f"Istio manifests with neither an HTTP connection manager patch nor a Gateway: {unchecked}"
    istio_md = (REPO / "docs" / "istio.md").read_text()
    for what in ("overload_manager", "global_downstream_max_connections", "fixed_heap"):
        assert what in istio_md, f"docs/istio.md must say how (or that) Istio sets {what}"


# ------------------------------------------------------------------------------------------ slow headers

SLOW_HEADERS_TIMEOUT = 2.0


def test_a_client_sending_its_headers_slowly_is_cut_off_at_request_headers_timeout_while_another_is_served(
        envoy_with, upstream):
    """Slowloris: a client that sends one header byte every 0.25 s never finishes its headers. The shipped 10 s
    rendered as 2 s: Envoy answers 408 and closes at the timeout; a client on another connection is served
    throughout, and the slow request never reaches the AS."""
    assert hcms(envoy_mod.load("direct-mtls.yaml"))[0]["request_headers_timeout"] == "10s"
    e = envoy_with(None, template=with_hcm("direct-mtls.yaml", request_headers_timeout=f"{SLOW_HEADERS_TIMEOUT:g}s"),
                   name="slow-headers")
    timeouts = e.stat("http.oauth_mtls_https.downstream_rq_header_timeout")
    test_id = client.new_test_id()
    served: list[int] = []
    stop = threading.Event()

    def legitimate():
        while not stop.is_set():
            r = client.token_request(e.port, "dn-client", "demo-client")
            assert_authenticated(r, upstream, "demo-client", "dn-client")
            served.append(r.status)
            time.sleep(0.2)

    worker = threading.Thread(target=legitimate, daemon=True)
    worker.start()
    try:
        with client._connect(e.port, "dn-client", ["http/1.1"]) as s:
            s.sendall(f"POST /token HTTP/1.1\r\nhost: localhost\r\nx-test-id: {test_id}\r\n".encode())
            started = time.monotonic()
            closed_at = None
            s.settimeout(0.05)
            sent = 0
            data = b""
            while time.monotonic() - started < SLOW_HEADERS_TIMEOUT + 8:
                try:
                    s.sendall(b"x-slow: a\r\n"[sent % 11:sent % 11 + 1])
                    sent += 1
                except (OSError, ssl.SSLError):
                    closed_at = closed_at or time.monotonic()
                try:
                    got = s.recv(65536)
                    if not got:
                        closed_at = closed_at or time.monotonic()
                        break
                    data += got
                    closed_at = closed_at or time.monotonic()
                except (TimeoutError, ssl.SSLWantReadError):
                    pass
                except (OSError, ssl.SSLError):
                    closed_at = closed_at or time.monotonic()
                    break
                time.sleep(0.2)
        cut_after = (closed_at or time.monotonic()) - started
    finally:
        stop.set()
        worker.join(20)
    print(f"slow client: cut off after {cut_after:.2f} s (request_headers_timeout {SLOW_HEADERS_TIMEOUT:g} s), "
          f"{sent} header bytes sent; {len(served)} legitimate requests served meanwhile; answer {data[:40]!r}")
    assert closed_at is not None, "the slow client was never cut off"
    assert SLOW_HEADERS_TIMEOUT - 0.3 <= cut_after <= SLOW_HEADERS_TIMEOUT + 1.5, cut_after
    assert data.startswith(b"HTTP/1.1 408"), data[:200]
    assert len(served) >= 3 and set(served) == {200}, served
    assert upstream.find(test_id) == []
    assert e.stat("http.oauth_mtls_https.downstream_rq_header_timeout") == timeouts + 1


# ------------------------------------------------------------------------------------------ HTTP/2 streams

def open_beyond_the_limit(conn: H2, path: str = "/token") -> int:
    """Open one more stream than the server allows: the h2 library refuses to, so its view of the server's
    SETTINGS_MAX_CONCURRENT_STREAMS is lifted for this one HEADERS frame."""
    import h2.settings
    settings = conn.conn.remote_settings
    code = h2.settings.SettingCodes.MAX_CONCURRENT_STREAMS
    saved = settings._settings[code]
    settings._settings[code] = type(saved)([2 ** 31 - 1])
    try:
        return conn.start("POST", path, [("content-type", FORM)], token_body().encode())
    finally:
        settings._settings[code] = saved


def test_http2_streams_beyond_max_concurrent_streams_are_refused_and_other_connections_are_served(
        envoy_with, upstream):
    """The shipped limit (100). A client holding 100 token requests open (the filter waits for their bodies) that
    opens a 101st loses its connection: Envoy 1.40 (nghttp2) treats the excess as a connection error, so none of
    its 101 requests reaches the AS and the 101st never becomes a request. A client on another connection is
    served meanwhile, and one that stays within the limit gets all 100 of its held requests answered."""
    e = envoy_with(None, name="shipped-direct")
    legit, hostile = H2(e.port), H2(e.port)
    try:
        assert hostile.conn.remote_settings.max_concurrent_streams == 100, "not the shipped max_concurrent_streams"
        requests = e.stat("http.oauth_mtls_https.downstream_rq_http2_total")
        held = [legit.start("POST", "/token", [("content-type", FORM)], end_stream=False) for _ in range(100)]
        flood = [hostile.start("POST", "/token", [("content-type", FORM)], end_stream=False) for _ in range(100)]
        extra = open_beyond_the_limit(hostile)
        with pytest.raises(ConnectionError):
            hostile.response(extra)
        assert e.stat("http.oauth_mtls_https.downstream_rq_http2_total") == requests + 200, "the 101st was a request"
        assert all(upstream.find(hostile.streams[sid]["test_id"]) == [] for sid in [*flood, extra])
        # another client is served meanwhile, and the first one's 100 streams all complete on its connection
        assert_authenticated(client.token_request(e.port, "dn-client", "demo-client"), upstream, "demo-client",
                             "dn-client")
        served = 0
        for sid in held:
            legit.send(sid, token_body("demo-client").encode())
            r = legit.response(sid)
            assert r.status == 200 and upstream.find(r.test_id), r
            served += 1
        print(f"HTTP/2: the 101st stream closed the hostile connection (its 101 requests: none at the AS); "
              f"{served} of 100 held streams served on the legitimate connection")
    finally:
        legit.close()
        hostile.close()


# ------------------------------------------------------------------------------------------ the FAPI TLS profile

def s_client(port: int, *args: str) -> tuple[bool, str, str]:
    """(handshake completed, protocol, cipher) of `openssl s_client` with `args` against the port."""
    proc = subprocess.run(["openssl", "s_client", "-connect", f"127.0.0.1:{port}", "-servername", "localhost",
                           "-CAfile", str(pki.pki_dir() / "ca.pem"), *args],
                          input="", capture_output=True, text=True, timeout=30)
    out = proc.stdout + proc.stderr
    m = re.search(r"New, (\S+), Cipher is (\S+)", out)
    ok = proc.returncode == 0 and m is not None and m.group(2) != "(NONE)"
    return ok, m.group(1) if m else "", m.group(2) if m else ""


LEGACY = ["-cipher", "DEFAULT:@SECLEVEL=0"]  # let OpenSSL 3 offer what it would otherwise refuse itself
REFUSED = {
    "tls1.1": ["-tls1_1", *LEGACY],
    "tls1.0": ["-tls1", *LEGACY],
    "tls1.2-AES128-SHA": ["-tls1_2", "-cipher", "AES128-SHA"],
    "tls1.2-ECDHE-RSA-AES128-SHA": ["-tls1_2", "-cipher", "ECDHE-RSA-AES128-SHA"],
    "tls1.2-ECDHE-RSA-CHACHA20-POLY1305": ["-tls1_2", "-cipher", "ECDHE-RSA-CHACHA20-POLY1305"],
    # in the profile, but not with the shipped RSA server key: an RSA key negotiates exactly FAPI 1.0's pair
    "tls1.2-ECDHE-ECDSA-AES128-GCM-SHA256": ["-tls1_2", "-cipher", "ECDHE-ECDSA-AES128-GCM-SHA256"],
}
ALLOWED = {
    "tls1.2-ECDHE-RSA-AES128-GCM-SHA256": (["-tls1_2", "-cipher", "ECDHE-RSA-AES128-GCM-SHA256"], "TLSv1.2"),
    "tls1.2-ECDHE-RSA-AES256-GCM-SHA384": (["-tls1_2", "-cipher", "ECDHE-RSA-AES256-GCM-SHA384"], "TLSv1.2"),
    "tls1.3": (["-tls1_3"], "TLSv1.3"),
}


def client_facing_port(which: str, envoy_with, front_proxy_with) -> int:
    if which == "direct":
        return envoy_with(None, name="shipped-direct").port
    front, _ = front_proxy_with(None)
    return front.port


@pytest.mark.parametrize("which", ["direct", "front-proxy"])
@pytest.mark.parametrize("case", sorted(REFUSED))
def test_a_handshake_outside_the_fapi_tls_profile_fails(case, which, envoy_with, front_proxy_with):
    ok, protocol, cipher = s_client(client_facing_port(which, envoy_with, front_proxy_with), *REFUSED[case])
    assert not ok, f"{case}: negotiated {protocol} {cipher}"


@pytest.mark.parametrize("which", ["direct", "front-proxy"])
@pytest.mark.parametrize("case", sorted(ALLOWED))
def test_a_handshake_inside_the_fapi_tls_profile_succeeds(case, which, envoy_with, front_proxy_with):
    args, expected = ALLOWED[case]
    ok, protocol, cipher = s_client(client_facing_port(which, envoy_with, front_proxy_with), *args)
    assert ok and protocol == expected, f"{case}: {ok} {protocol} {cipher}"


def test_without_the_profile_envoys_default_would_negotiate_a_suite_fapi_does_not_list(envoy_with):
    """Why the shipped configs set tls_params: Envoy 1.40's default already refuses TLS 1.1 and AES128-SHA, but
    negotiates ECDHE-RSA-CHACHA20-POLY1305, which FAPI 1.0 Advanced §8.5 does not permit."""
    e = envoy_with(None, template=without_tls_params("direct-mtls.yaml"), name="default-tls-params")
    ok, protocol, cipher = s_client(e.port, "-tls1_2", "-cipher", "ECDHE-RSA-CHACHA20-POLY1305")
    assert ok and cipher == "ECDHE-RSA-CHACHA20-POLY1305", (ok, protocol, cipher)


# ------------------------------------------------------------------------------------------ connection limit

CONNECTION_LIMIT = 4


def tls_connection(port: int) -> ssl.SSLSocket | None:
    """A completed TLS handshake with the client certificate, or None when Envoy closed the connection."""
    try:
        return client._connect(port, "dn-client", ["http/1.1"])
    except (OSError, ssl.SSLError):
        return None


def keep_alive_token_request(s: ssl.SSLSocket, port: int) -> client.Response:
    test_id = client.new_test_id()
    body = token_body("demo-client").encode()
    s.sendall(f"POST /token HTTP/1.1\r\nhost: localhost:{port}\r\nx-test-id: {test_id}\r\ncontent-type: {FORM}\r\n"
              f"content-length: {len(body)}\r\n\r\n".encode() + body)
    return client.read_http1_response(s, test_id)


def test_the_overload_managers_connection_limit_refuses_connections_beyond_it(envoy_with, upstream):
    """The shipped 10,000 rendered as 4: with 4 client connections open, 3 more are closed as they are accepted
    (no handshake; the listener's downstream_global_cx_overflow counts them) while the 4 keep working; once one
    closes, a new connection is accepted again."""
    e = envoy_with(None, template=with_connection_limit("direct-mtls.yaml", CONNECTION_LIMIT), name="cx-limit")
    overflow = f"listener.127.0.0.1_{e.port}.downstream_global_cx_overflow"
    before = e.stat(overflow)
    held = [tls_connection(e.port) for _ in range(CONNECTION_LIMIT)]
    assert all(held), "the first connections up to the limit must be accepted"
    for s in held:
        assert_authenticated(keep_alive_token_request(s, e.port), upstream, "demo-client", "dn-client")
    extra = [tls_connection(e.port) for _ in range(3)]
    refused = sum(1 for s in extra if s is None)
    counted = e.stat(overflow) - before
    print(f"limit {CONNECTION_LIMIT}: {refused} of 3 extra connections refused; {overflow} +{counted:g}; "
          f"pressure {e.stat('overload.envoy.resource_monitors.global_downstream_max_connections.pressure'):g}")
    assert refused == 3 and counted == 3
    for s in held:  # the open connections are unaffected
        assert_authenticated(keep_alive_token_request(s, e.port), upstream, "demo-client", "dn-client")
    held.pop().close()
    again = envoy_mod.poll(lambda: tls_connection(e.port), timeout=10, what="a connection once one closed")
    assert_authenticated(keep_alive_token_request(again, e.port), upstream, "demo-client", "dn-client")
    for s in [*held, again]:
        s.close()


# ------------------------------------------------------------------------------------------ access log

def test_the_access_log_says_what_was_asked_the_answer_and_whose_certificate(envoy_with, upstream):
    e = envoy_with(None, name="shipped-direct")
    r = client.token_request(e.port, "dn-client", "demo-client", path="/a/../token?secret=not-logged")
    assert_authenticated(r, upstream, "demo-client", "dn-client")
    (seen,) = upstream.find(r.test_id)
    (request_id,) = seen.headers["x-request-id"]
    line = access_log_line(e, request_id)
    assert line["status"] == 200 and line["details"] == "via_upstream" and line["method"] == "POST", line
    assert line["path"] == "/token", "the normalized path, without its query"
    assert line["peer_sha256"] == pki.sha256_hex("dn-client")
    assert line["client_id"] == "demo-client"
    assert line["tls"].startswith("TLSv1.3") and isinstance(line["duration_ms"], int)
    # a refusal by the filter: logged with its status, the certificate it came with and no client_id
    assert client.token_request(e.port, "other-client", "demo-client").status == 401
    refused = envoy_mod.poll(lambda: [x for x in access_log_lines(e) if x["status"] == 401
                                      and x["peer_sha256"] == pki.sha256_hex("other-client")],
                             timeout=10, what="the refusal's access log line")
    print(f"a refusal in the access log: {refused[-1]}")
    # (details is empty: the filter's own replies carry no response code details)
    assert refused[-1]["client_id"] is None and refused[-1]["path"] == "/token", refused[-1]


def test_behind_a_front_proxy_one_request_id_runs_through_both_access_logs_to_the_as(front_proxy_with, upstream):
    """The inner Envoy is not the edge (use_remote_address: false): it keeps the front proxy's x-request-id, so
    one id finds a request in the front proxy's log, the inner Envoy's log and at the AS."""
    front, inner = front_proxy_with(None)
    r = client.token_request(front.port, "dn-client", "demo-client")
    assert_authenticated(r, upstream, "demo-client", "dn-client")
    (seen,) = upstream.find(r.test_id)
    (request_id,) = seen.headers["x-request-id"]
    front_line, inner_line = access_log_line(front, request_id), access_log_line(inner, request_id)
    assert front_line["peer_sha256"] == pki.sha256_hex("dn-client"), "the front proxy logs the client"
    assert inner_line["peer_sha256"] == pki.sha256_hex("forwarder"), "the inner Envoy logs its peer"
    assert inner_line["client_id"] == "demo-client" and inner_line["status"] == front_line["status"] == 200


# ------------------------------------------------------------------------------------------ oauth-mtls lint

def require_cli() -> None:
    if not CLI.is_file():
        pytest.fail(f"the oauth-mtls CLI is missing: {CLI}; build it with `make cli-build`", pytrace=False)


def lint(path: pathlib.Path) -> subprocess.CompletedProcess:
    return subprocess.run([str(CLI), "lint", str(path)], capture_output=True, text=True, timeout=60)


@pytest.mark.parametrize("name", YAMLS)
def test_oauth_mtls_lint_finds_nothing_to_warn_about_in_a_shipped_config(name):
    require_cli()
    proc = lint(envoy_mod.ENVOY_DIR / name)
    print(proc.stdout)
    assert proc.returncode == 0 and "warning" not in proc.stdout + proc.stderr, proc.stdout + proc.stderr
    assert "Envoy bootstrap" in proc.stdout, proc.stdout


def test_oauth_mtls_lint_warns_about_a_shipped_config_missing_a_deployment_setting(tmp_path):
    """The same file with session resumption on and without merge_slashes: one warning each, naming the rule."""
    require_cli()
    cfg = shipped("direct-mtls.yaml")
    for tls in downstream_tls(cfg):
        tls.pop("disable_stateless_session_resumption")
    for hcm in hcms(cfg):
        hcm.pop("merge_slashes")
    path = tmp_path / "direct-mtls.json"
    path.write_text(json.dumps(cfg))
    proc = lint(path)
    warnings = [ln for ln in proc.stdout.splitlines() if "warning" in ln]
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert len(warnings) == 2, proc.stdout
    assert any("disable_stateless_session_resumption" in w and "SECURITY.md rule 6" in w for w in warnings), warnings
    assert any("merge_slashes" in w and "SECURITY.md rule 4" in w for w in warnings), warnings
