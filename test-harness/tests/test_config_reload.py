"""The filter's configuration replaced at runtime through Envoy's file-based dynamic resources (LDS from a
watched directory, the file atomically replaced by rename) while several keep-alive mTLS connections send
token requests: no request fails, the new configuration takes effect, and an invalid one is refused while
the last good one keeps serving."""
import http.client
import json
import os
import threading
import time

import pytest
import yaml

from oauth_mtls_harness import client, pki
from oauth_mtls_harness import envoy as envoy_mod
from oauth_mtls_harness.checks import assert_authenticated, assert_invalid_client, tls_client
from oauth_mtls_harness.envoy import poll

OTHER_DN = "CN=other-client,O=Example Bank,C=GB"
PLUGIN_A = {"unknown_client": "reject", "clients": [tls_client("demo-client", subject_dn=pki.DN_CLIENT_RFC4514)]}
PLUGIN_B = {"unknown_client": "reject", "clients": [tls_client("demo-client", subject_dn=pki.DN_CLIENT_RFC4514),
                                                    tls_client("new-client", subject_dn=OTHER_DN)]}
PLUGIN_INVALID = dict(PLUGIN_B, no_such_key=True)
LISTENER_TYPE = "type.googleapis.com/envoy.config.listener.v3.Listener"


class LdsEnvoy:
    """envoy/direct-mtls.yaml with its listener moved into an LDS file under a watched directory."""

    def __init__(self, upstream):
        envoy_mod.require_wasm()
        port, admin = envoy_mod.free_port(), envoy_mod.free_port()
        self.ports = {8443: port, 9901: admin, 9080: upstream.port, 9081: envoy_mod.free_port(),
                      9082: envoy_mod.free_port()}
        cfg = envoy_mod.render("direct-mtls.yaml", self.ports, PLUGIN_A)
        cfg["static_resources"].pop("listeners")
        self.envoy = envoy_mod.Envoy(cfg, "lds-reload", port, admin, extra_args=("--drain-time-s", "3"))
        self.watched = self.envoy.dir / "lds"
        self.watched.mkdir(exist_ok=True)
        self.lds = self.watched / "lds.yaml"
        self.version = 0
        self.push(PLUGIN_A)
        cfg["node"] = {"id": "lds-reload", "cluster": "oauth-mtls-tests"}
        cfg["dynamic_resources"] = {"lds_config": {"resource_api_version": "V3", "path_config_source": {
            "path": str(self.lds), "watched_directory": {"path": str(self.watched)}}}}
        self.envoy.config_path.write_text(yaml.safe_dump(cfg, sort_keys=False))
        self.envoy.start()

    def push(self, plugin: dict) -> None:
        """Write the listener with `plugin` as a new LDS version: to a file beside the watched directory, then
        rename it over the watched file (atomic, as the Envoy docs ask)."""
        self.version += 1
        listener = envoy_mod.render("direct-mtls.yaml", self.ports, plugin)["static_resources"]["listeners"][0]
        doc = {"version_info": str(self.version), "resources": [{"@type": LISTENER_TYPE, **listener}]}
        tmp = self.envoy.dir / f"lds.{self.version}.tmp"
        tmp.write_text(yaml.safe_dump(doc, sort_keys=False))
        os.rename(tmp, self.lds)

    def lds_stat(self, name: str) -> float:
        return self.envoy.stat(f"listener_manager.lds.{name}")


@pytest.fixture(scope="module")
def lds(upstream):
    e = LdsEnvoy(upstream)
    yield e
    e.envoy.stop()


class Load:
    """Keep-alive HTTP/1.1 connections, one thread each, sending token requests until stopped. Each result
    is (monotonic time, status, x-mtls-client-id the AS saw or None, connection number); exceptions are
    failures."""

    def __init__(self, port: int, streams: list[tuple[str, str]]):
        self.port, self.stop_event = port, threading.Event()
        self.results: dict[int, list[tuple]] = {i: [] for i in range(len(streams))}
        self.errors: list[str] = []
        self.threads = [threading.Thread(target=self._loop, args=(i, cert, cid), daemon=True)
                        for i, (cert, cid) in enumerate(streams)]

    def __enter__(self):
        for t in self.threads:
            t.start()
        return self

    def __exit__(self, *exc):
        self.stop_event.set()
        for t in self.threads:
            t.join(20)

    def _loop(self, i: int, cert: str, client_id: str) -> None:
        ctx = client.tls_context(cert, ["http/1.1"])
        conn, n_conn = None, 0
        while not self.stop_event.is_set():
            if conn is None:
                conn, n_conn = http.client.HTTPSConnection("127.0.0.1", self.port, context=ctx, timeout=15), n_conn + 1
            try:
                conn.request("POST", "/token", body=client.token_body(client_id),
                             headers={"content-type": client.FORM})
                resp = conn.getresponse()
                body = resp.read()
                seen = None
                if resp.status == 200:
                    seen = (json.loads(body)["headers"].get("x-mtls-client-id") or [None])[0]
                self.results[i].append((time.monotonic(), resp.status, seen, n_conn))
                if resp.will_close:
                    conn.close()
                    conn = None
            except (OSError, http.client.HTTPException, ValueError) as e:
                self.errors.append(f"stream {i} ({cert} as {client_id}) connection {n_conn}: {type(e).__name__}: {e}")
                conn.close()
                conn = None
            time.sleep(0.01)


STREAMS = [("dn-client", "demo-client"), ("dn-client", "demo-client"), ("other-client", "demo-client"),
           ("other-client", "new-client")]


def test_lds_update_replaces_the_filter_configuration_under_load_without_failing_a_request(lds, upstream):
    e = lds.envoy
    assert_invalid_client(client.token_request(e.port, "other-client", "new-client"), upstream, "unknown client")
    ok = lds.lds_stat("update_success")
    with Load(e.port, STREAMS) as load:
        time.sleep(2)
        swapped_at = time.monotonic()
        lds.push(PLUGIN_B)
        poll(lambda: lds.lds_stat("update_success") > ok, timeout=15, what="LDS update accepted")
        poll(lambda: any(s == 200 for _, s, _, _ in load.results[3]), timeout=15,
             what="new-client accepted on a load connection (new configuration in effect)")
        time.sleep(4)   # past --drain-time-s: every load connection has moved to the new listener
    assert not load.errors, load.errors[:5]
    for i, (cert, cid) in enumerate(STREAMS[:3]):
        rs = load.results[i]
        assert len(rs) > 20, f"stream {i} sent only {len(rs)} requests"
        want = (200, "demo-client") if cert == "dn-client" else (401, None)
        wrong = [r for r in rs if (r[1], r[2]) != want]
        assert not wrong, f"stream {i} ({cert} as {cid}): {wrong[:3]}"
    # new-client: refused before the swap, accepted after it, never refused again once accepted
    rs = load.results[3]
    before = [r for r in rs if r[0] < swapped_at]
    assert before and all(r[1] == 401 for r in before), before[:3]
    first_ok = next(k for k, r in enumerate(rs) if r[1] == 200)
    assert all((r[1], r[2]) == (200, "new-client") for r in rs[first_ok:]), rs[first_ok:first_ok + 5]
    reconnects = {i: load.results[i][-1][3] for i in load.results}
    print(f"requests per stream: {[len(v) for v in load.results.values()]}; connections per stream: {reconnects}")
    assert_authenticated(client.token_request(e.port, "other-client", "new-client"), upstream, "new-client",
                         "other-client")


def test_invalid_configuration_pushed_by_lds_is_refused_and_the_last_good_one_keeps_serving(lds, upstream):
    e = lds.envoy
    lds.push(PLUGIN_B)
    poll(lambda: client.token_request(e.port, "other-client", "new-client").status == 200, timeout=15,
         what="configuration B in effect")
    rejected = lds.lds_stat("update_rejected")
    with Load(e.port, STREAMS) as load:
        time.sleep(1)
        lds.push(PLUGIN_INVALID)
        poll(lambda: lds.lds_stat("update_rejected") > rejected, timeout=15, what="LDS update rejected")
        time.sleep(2)
    assert not load.errors, load.errors[:5]
    for i, (cert, cid) in enumerate(STREAMS):
        want = {("dn-client", "demo-client"): (200, "demo-client"), ("other-client", "demo-client"): (401, None),
                ("other-client", "new-client"): (200, "new-client")}[(cert, cid)]
        wrong = [r for r in load.results[i] if (r[1], r[2]) != want]
        assert load.results[i] and not wrong, f"stream {i} ({cert} as {cid}): {wrong[:3]}"
    assert "no_such_key" in e.log_text(), "Envoy's log should name the invalid key"
    assert_authenticated(client.token_request(e.port, "other-client", "new-client"), upstream, "new-client",
                         "other-client")
