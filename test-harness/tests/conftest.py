"""Session fixtures: the test PKI, the in-process AS/registry/JWKS servers, and Envoy instances started
from the shipped configurations (envoy/*.yaml) with a given plugin configuration; `as_deployment` runs
envoy/as-resources.yaml in front of the real AS (node-oidc-provider)."""
from __future__ import annotations

import json
import pathlib
from collections import OrderedDict

import pytest

from oauth_mtls_harness import envoy as envoy_mod
from oauth_mtls_harness import pki, servers

MAX_LIVE_ENVOYS = 4
_live: OrderedDict[str, envoy_mod.Envoy] = OrderedDict()


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


# ---------------------------------------------------------------- the real AS behind envoy/as-resources.yaml

AS_INITIAL_ACCESS_TOKEN = "test-initial-access-token"
AS_REDIRECT_URI = "https://client.example.org/cb"

# The AS's registrations at start (the filter learns them from the AS's registry endpoint).
AS_CLIENTS = [
    {"client_id": "bank-dn", "token_endpoint_auth_method": "tls_client_auth",
     "tls_client_auth_subject_dn": pki.DN_CLIENT_RFC4514, "tls_client_certificate_bound_access_tokens": True,
     "grant_types": ["client_credentials"], "response_types": [], "redirect_uris": []},
    {"client_id": "self-signed", "token_endpoint_auth_method": "self_signed_tls_client_auth",
     "jwks": pki.jwks("self-signed-1"), "tls_client_certificate_bound_access_tokens": True,
     "grant_types": ["client_credentials"], "response_types": [], "redirect_uris": []},
    # tls_client_auth by DNS SAN, tokens NOT bound (for `require_binding`)
    {"client_id": "unbound-dns", "token_endpoint_auth_method": "tls_client_auth",
     "tls_client_auth_san_dns": "client.example.com", "tls_client_certificate_bound_access_tokens": False,
     "grant_types": ["client_credentials"], "response_types": [], "redirect_uris": []},
    # a public client (authorization code + PKCE): its refresh tokens are bound to its certificate too
    {"client_id": "public-app", "token_endpoint_auth_method": "none",
     "tls_client_certificate_bound_access_tokens": True, "grant_types": ["authorization_code", "refresh_token"],
     "response_types": ["code"], "redirect_uris": [AS_REDIRECT_URI]},
]


class AsDeployment:
    """envoy/as-resources.yaml (filter + jwt_authn) in front of node-oidc-provider, the echo upstream as the
    protected API. `issuer` is the AS's public URL (https://localhost:<envoy port>)."""

    def __init__(self, envoy: envoy_mod.Envoy, oidc: servers.OidcProvider, api):
        self.envoy, self.oidc, self.api = envoy, oidc, api
        self.port = envoy.port
        self.issuer = oidc.issuer
        self.api_resource = f"{self.issuer}/api/"
        self.name = envoy.name

    def alive(self) -> bool:
        return self.envoy.alive() and self.oidc.alive()

    def stop(self) -> None:
        self.envoy.stop()
        self.oidc.stop()

    def log_tail(self, lines: int = 40) -> str:
        return f"{self.envoy.log_tail(lines)}\n--- AS log (tail) ---\n{self.oidc.log_tail(lines)}"

    @staticmethod
    def shipped_plugin() -> dict:
        """The plugin JSON as shipped in envoy/as-resources.yaml (template ports, e.g. localhost:8443)."""
        return envoy_mod.plugin_json(envoy_mod.load("as-resources.yaml"))


def _require_node() -> None:
    try:
        servers.require_node_modules()
    except servers.NodeMissing as e:
        pytest.fail(str(e), pytrace=False)


@pytest.fixture(scope="session")
def as_deployment(upstream):
    """as_deployment(plugin_changes=None, without_http_filters=(), name=None) -> a running AsDeployment:
    the shipped envoy/as-resources.yaml on free ports (its URLs rewritten to them), its plugin JSON updated
    with `plugin_changes` (top-level keys replaced), the HTTP filters named in `without_http_filters`
    removed. A fresh AS (with AS_CLIENTS) per deployment; deployments are cached like envoy_with's."""

    def make(plugin_changes: dict | None = None, without_http_filters: tuple[str, ...] = (),
             name: str | None = None) -> AsDeployment:
        _require_wasm()
        _require_node()
        key = json.dumps(["as-resources", plugin_changes, list(without_http_filters)], sort_keys=True)

        def start():
            port, admin = envoy_mod.free_port(), envoy_mod.free_port()
            as_port, registry_port = envoy_mod.free_port(), envoy_mod.free_port()
            ports = {8443: port, 9901: admin, 9080: as_port, 9081: registry_port, 9090: upstream.port}
            cfg = envoy_mod.render("as-resources.yaml", ports, without_http_filters=tuple(without_http_filters))
            if plugin_changes:
                plugin = envoy_mod.plugin_json(cfg)
                plugin.update(plugin_changes)
                (wasm,) = envoy_mod.wasm_filters(cfg)
                wasm["typed_config"]["config"]["configuration"]["value"] = json.dumps(plugin, indent=1)
            label = name or "as-resources"
            env = envoy_mod.Envoy(cfg, label, port, admin)
            oidc = servers.OidcProvider(f"https://localhost:{port}", as_port, registry_port, AS_CLIENTS, env.dir,
                                        initial_access_token=AS_INITIAL_ACCESS_TOKEN, name=f"{label}-as")
            oidc.start()
            try:
                env.start()
                # ready for tests once the filter has loaded the AS's registrations
                envoy_mod.poll(lambda: env.stat("oauth_mtls.registry.clients") >= len(AS_CLIENTS), timeout=20,
                               what="the filter loaded the AS's clients from its registry endpoint")
            except Exception:
                env.stop()
                oidc.stop()
                raise
            return AsDeployment(env, oidc, upstream)

        return _start(key, start)

    yield make
    for key in [k for k, v in _live.items() if isinstance(v, AsDeployment)]:
        _stop(_live.pop(key))


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    """On a failure, attach the tail of every running Envoy's log to the report."""
    outcome = yield
    rep = outcome.get_result()
    if rep.when == "call" and rep.failed:
        for e in _live.values():
            for x in (e if isinstance(e, tuple) else (e,)):
                rep.sections.append((f"envoy {x.name} log (tail)", x.log_tail(40)))


# ---------------------------------------------------------------- which Envoy the suite ran on

_envoy_version: str | None = None


def envoy_version() -> str:
    """The Envoy version, e.g. `1.40.0 (<sha>/1.40.0/Clean/RELEASE/BoringSSL)`, from `<envoy command> --version`
    (run once); also written to $OAUTH_MTLS_BUILD/envoy-version.txt with the command that ran it."""
    global _envoy_version
    if _envoy_version is None:
        import re
        import subprocess
        try:
            cmd = envoy_mod.envoy_command()
            proc = subprocess.run(cmd + ["--version"], capture_output=True, text=True, timeout=300)
            lines = [ln.strip() for ln in (proc.stdout + proc.stderr).splitlines() if "version:" in ln]
            if proc.returncode == 0 and lines:
                build = lines[-1].split("version:", 1)[1].strip()  # <sha>/<x.y.z>/<state>/<type>/<ssl>
                m = re.search(r"/(\d+\.\d+\.\d+[^/]*)/", build)
                _envoy_version = f"{m.group(1) if m else '?'} ({build})"
            else:
                _envoy_version = f"unknown (`{' '.join(cmd)} --version` exited {proc.returncode})"
        except Exception as e:  # reported, never fatal here: the tests that need Envoy fail
            cmd, _envoy_version = [], f"unavailable ({e})"
        try:
            out = pki.build_dir() / "envoy-version.txt"
            out.parent.mkdir(parents=True, exist_ok=True)
            out.write_text(f"{_envoy_version}\ncommand: {' '.join(cmd)}\n")
        except OSError:
            pass
    return _envoy_version


def pytest_report_header(config):
    return f"envoy: {envoy_version()} (recorded in {pki.build_dir() / 'envoy-version.txt'})"


def pytest_terminal_summary(terminalreporter, exitstatus, config):
    terminalreporter.write_line(f"ran on envoy: {envoy_version()}")
