"""Session fixtures: the test PKI, the in-process AS/registry/JWKS servers, and Envoy instances started
from the shipped configurations (envoy/*.yaml) with a given plugin configuration."""
from __future__ import annotations

import json
import pathlib
import sys
from collections import OrderedDict

import pytest

HARNESS = pathlib.Path(__file__).resolve().parent.parent
sys.path.insert(0, str(HARNESS))

import envoy as envoy_mod  # noqa: E402
import pki  # noqa: E402
import servers  # noqa: E402

MAX_LIVE_ENVOYS = 4
_live: "OrderedDict[str, envoy_mod.Envoy]" = OrderedDict()


@pytest.fixture(scope="session")
def pki_dir() -> pathlib.Path:
    return pki.ensure_pki()


@pytest.fixture(scope="session")
def upstream(pki_dir):
    s = servers.EchoUpstream()
    yield s
    s.stop()


@pytest.fixture(scope="session")
def registry(pki_dir):
    s = servers.DocumentServer()
    s.set("/clients", [])  # the path the shipped configs poll
    yield s
    s.stop()


@pytest.fixture(scope="session")
def jwks_server(pki_dir):
    s = servers.DocumentServer()
    yield s
    s.stop()


def _require_wasm() -> None:
    try:
        envoy_mod.require_wasm()
    except envoy_mod.WasmMissing as e:
        pytest.fail(str(e), pytrace=False)


def _start(key: str, make) -> envoy_mod.Envoy:
    """Envoys are cached by configuration for the session (tests that share a configuration share the
    process; tests compare stats by deltas). At most MAX_LIVE_ENVOYS run at once."""
    e = _live.get(key)
    if e is not None and all(x.alive() for x in (e if isinstance(e, tuple) else (e,))):
        _live.move_to_end(key)
        return e
    envs = make()
    _live[key] = envs
    while len(_live) > MAX_LIVE_ENVOYS:
        _, old = _live.popitem(last=False)
        _stop(old)
    return envs


def _stop(e) -> None:
    for x in (e if isinstance(e, tuple) else (e,)):
        x.stop()


@pytest.fixture(scope="session")
def envoy_with(upstream, registry, jwks_server):
    """envoy_with(plugin, template="direct-mtls.yaml", with_filter=True) -> a running Envoy from the shipped
    template with free ports, the test servers as clusters, and `plugin` as the filter's JSON (None keeps
    the shipped JSON)."""

    def make(plugin: dict | None, template: str = "direct-mtls.yaml", with_filter: bool = True,
             name: str | None = None) -> envoy_mod.Envoy:
        if with_filter:
            _require_wasm()
        key = json.dumps([template, plugin, with_filter], sort_keys=True)

        def start():
            port, admin = envoy_mod.free_port(), envoy_mod.free_port()
            ports = {8443: port, 9901: admin, 9080: upstream.port, 9081: registry.port, 9082: jwks_server.port}
            cfg = envoy_mod.render(template, ports, plugin, with_filter)
            label = name or (pathlib.Path(template).stem + ("" if with_filter else "-nofilter"))
            return envoy_mod.Envoy(cfg, label, port, admin).start()

        return _start(key, start)

    yield make
    while _live:
        _stop(_live.popitem()[1])


@pytest.fixture(scope="session")
def front_proxy_with(upstream, registry, jwks_server):
    """front_proxy_with(inner_plugin, with_filter=True) -> (front, inner): envoy/front-proxy.yaml in front of
    envoy/behind-front-proxy.yaml, both on free ports. `front.port` is where clients connect."""

    def make(plugin: dict | None, with_filter: bool = True):
        if with_filter:
            _require_wasm()
        key = json.dumps(["front-proxy-pair", plugin, with_filter], sort_keys=True)

        def start():
            inner_port, inner_admin = envoy_mod.free_port(), envoy_mod.free_port()
            front_port, front_admin = envoy_mod.free_port(), envoy_mod.free_port()
            inner_cfg = envoy_mod.render("behind-front-proxy.yaml", {
                8444: inner_port, 9902: inner_admin, 9080: upstream.port, 9081: registry.port,
                9082: jwks_server.port}, plugin, with_filter)
            front_cfg = envoy_mod.render("front-proxy.yaml", {8443: front_port, 9901: front_admin,
                                                              8444: inner_port})
            suffix = "" if with_filter else "-nofilter"
            inner = envoy_mod.Envoy(inner_cfg, "inner" + suffix, inner_port, inner_admin).start()
            try:
                front = envoy_mod.Envoy(front_cfg, "front" + suffix, front_port, front_admin).start()
            except Exception:
                inner.stop()
                raise
            return (front, inner)

        return _start(key, start)

    yield make


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    """On a failure, attach the tail of every running Envoy's log to the report."""
    outcome = yield
    rep = outcome.get_result()
    if rep.when == "call" and rep.failed:
        for e in _live.values():
            for x in (e if isinstance(e, tuple) else (e,)):
                rep.sections.append((f"envoy {x.name} log (tail)", x.log_tail(40)))
