"""The documentation stays true to the code (pure Python and fast; only the YAML validation runs Envoy).

- docs/configuration.md's table lists exactly the keys the filter accepts, asked of the filter's own parser
  through `oauth-mtls lint --json` (target/release/oauth-mtls, built by `make cli-build`), and the default it
  documents for each key is accepted.
- every test SECURITY.md names exists: `test_x.py::test_name` (and `::test_name` after it) as a `def` in that
  file, `module::tests::name` as a Rust `fn name` anywhere under src/, `module::tests` as a module with tests.
- every ```yaml block in README.md and docs/ is either an excerpt of a shipped file, marked by a first line
  `# from envoy/<file>.yaml` (each of its non-comment lines, whitespace-normalised and without trailing
  comments, is a line of that file), or a complete Envoy configuration that `envoy --mode validate` accepts.
- relative links between the documents point to files and headings that exist.
"""
from __future__ import annotations

import base64
import json
import pathlib
import re
import subprocess

import pytest
import yaml

from oauth_mtls_harness import envoy as envoy_mod
from oauth_mtls_harness import pki

REPO = pathlib.Path(__file__).resolve().parents[2]
DOCS = REPO / "docs"
SRC = REPO / "src"
TESTS = REPO / "test-harness" / "tests"
CONFIGURATION = DOCS / "configuration.md"
SECURITY = REPO / "SECURITY.md"
CLI = REPO / "target" / "release" / "oauth-mtls"

# The documents whose YAML blocks and links are checked.
DOCUMENTS = sorted([REPO / "README.md", SECURITY, REPO / "test-harness" / "README.md", *DOCS.rglob("*.md")])
YAML_DOCUMENTS = sorted([REPO / "README.md", *DOCS.rglob("*.md")])

BOGUS = "__not_a_key__"

# Values for keys whose documented default is not itself a value (`required`, `none`, `—`).
SAMPLES = {
    "trusted_forwarders[].uri_san": "spiffe://cluster.local/ns/istio-system/sa/istio-ingressgateway-service-account",
    "trusted_forwarders[].subject_dn": "CN=front-proxy,O=Example Bank,C=GB",
    "registry.cluster": "registry",
    "registry.authority": "registry.local",
    "registry.path": "/clients",
    "registries[].cluster": "registry",
    "registries[].authority": "registry.local",
    "registries[].path": "/clients",
    "registries[].tenant": "acme",
    "preset": "keycloak",
    "registries": [{"cluster": "registry", "authority": "registry.local", "path": "/clients", "tenant": "acme"}],
    "jwks_cluster": "jwks",
    "resources[].prefix": "/api/",
    "discovery.mtls_endpoint_aliases": {"token_endpoint": "https://mtls.example.com/token"},
    "revocation": lambda: {"cluster": "pki", "issuers": [base64.b64encode(pki.der("ca1")).decode()], "ocsp": True},
    "revocation.cluster": "pki",
    "revocation.issuers": lambda: [base64.b64encode(pki.der("ca1")).decode()],
    "revocation.ocsp_url": "http://ocsp.example.com/",
    "readiness_path": "/oauth-mtls/ready",
}
# Keys an object needs beside the one under test.
REQUIRED = {
    "registry": {"cluster": "registry", "authority": "registry.local", "path": "/clients"},
    "registries": {"cluster": "registry", "authority": "registry.local", "path": "/clients"},
    "resources": {"prefix": "/api/"},
    "revocation": lambda: {"cluster": "pki", "issuers": [base64.b64encode(pki.der("ca1")).decode()],
                           "crl_urls": ["http://pki.example.com/ca.crl"], "use_distribution_points": True},
}
# Keys a key needs beside it in its object (beyond REQUIRED).
WITH = {"revocation.ocsp_url": {"ocsp": True}}


def resolved(value):
    """A sample or a required object, made now when it needs the test PKI."""
    return value() if callable(value) else value


# ------------------------------------------------------------------------------------------ configuration table

def split_row(line: str) -> list[str]:
    """The cells of a Markdown table row (`\\|` inside a cell is not a separator)."""
    return [c.strip() for c in re.split(r"(?<!\\)\|", line.strip())[1:-1]]


def table_lines() -> tuple[int, list[str]]:
    """The line index of the configuration table's header and its lines (header, rule, rows)."""
    lines = CONFIGURATION.read_text().splitlines()
    headers = [i for i, line in enumerate(lines) if line.startswith("| key |")]
    assert len(headers) == 1, f"docs/configuration.md must have one `| key |` table, found {len(headers)}"
    start = headers[0]
    end = start
    while end < len(lines) and lines[end].startswith("|"):
        end += 1
    return start, lines[start:end]


def documented_rows() -> dict[str, list[str]]:
    """Documented key (`a`, `a.b` or `a[].b`) -> its row's cells."""
    _, lines = table_lines()
    rows = {}
    for line in lines[2:]:
        cells = split_row(line)
        m = re.fullmatch(r"`([a-z_]+(?:(?:\[\])?\.[a-z_]+)?)`", cells[0])
        assert m, f"the first cell of a configuration row must be one key in backticks: {line[:100]!r}"
        assert m.group(1) not in rows, f"{m.group(1)} is documented twice"
        rows[m.group(1)] = cells
    return rows


def split_key(key: str) -> tuple[str, str | None, str | None]:
    """`a` -> (a, None, None); `a.b` -> (a, ".", b); `a[].b` -> (a, "[]", b)."""
    m = re.fullmatch(r"([a-z_]+)(?:(\[\])?\.([a-z_]+))?", key)
    assert m, key
    if m.group(3) is None:
        return m.group(1), None, None
    return m.group(1), m.group(2) or ".", m.group(3)


DOCUMENTED = documented_rows()


@pytest.fixture(scope="module")
def lint(tmp_path_factory):
    """lint(config) -> the JSON `oauth-mtls lint --json` prints for that plugin configuration."""
    if not CLI.is_file():
        pytest.fail(f"the oauth-mtls CLI is missing: {CLI}; build it with `make cli-build`", pytrace=False)
    folder = tmp_path_factory.mktemp("lint")
    count = iter(range(1_000_000))

    def run(config: dict) -> dict:
        path = folder / f"config-{next(count)}.json"
        path.write_text(json.dumps(config))
        proc = subprocess.run([str(CLI), "lint", str(path), "--json"], capture_output=True, text=True, timeout=60)
        assert proc.stdout.strip(), f"oauth-mtls lint printed nothing: {proc.stderr}"
        return json.loads(proc.stdout)

    return run


def expected_keys(result: dict) -> list[str] | None:
    """The keys an `unknown field` error lists as accepted, or None when there is no such error."""
    for error in result.get("errors", []):
        m = re.search(rf"unknown field `{BOGUS}`, expected one of (.*)$", error["problem"])
        if m:
            return re.findall(r"`([^`]+)`", m.group(1))
    return None


@pytest.fixture(scope="module")
def accepted(lint) -> set[str]:
    """Every key the filter accepts, in the table's notation, found by offering it an unknown key at each level."""
    top = expected_keys(lint({BOGUS: 1}))
    assert top, "oauth-mtls lint no longer lists the accepted keys for an unknown one"
    keys = set()
    for key in top:
        nested = None
        for notation, probe in ((".", {key: {BOGUS: 1}}), ("[]", {key: [{BOGUS: 1}]})):
            found = expected_keys(lint(probe))
            if found:
                nested = [f"{key}{'[]' if notation == '[]' else ''}.{child}" for child in found]
        keys.update(nested or [key])
    return keys


def test_the_configuration_table_is_one_unbroken_table():
    start, lines = table_lines()
    assert split_row(lines[0]) == ["key", "type", "default", "meaning"]
    assert re.fullmatch(r"\|(---\|){4}", lines[1]), lines[1]
    after = CONFIGURATION.read_text().splitlines()[start + len(lines):]
    stray = [line for line in after if line.startswith("| `")]
    assert not stray, f"configuration rows after a break in the table: {stray[:3]}"
    assert all(len(split_row(line)) == 4 for line in lines[2:]), "every row has four cells"


def test_every_key_the_filter_accepts_is_documented(accepted):
    missing = sorted(accepted - set(DOCUMENTED))
    assert not missing, f"keys the filter accepts but docs/configuration.md does not list: {missing}"


def test_every_documented_key_is_accepted(accepted):
    # A row may also document the object or array that holds nested keys (`trusted_forwarders`, `resources`).
    parents = {split_key(k)[0] for k in accepted}
    unknown = sorted(k for k in DOCUMENTED if k not in accepted and k not in parents)
    assert not unknown, f"docs/configuration.md lists keys the filter does not accept: {unknown}"


def config_with(key: str, value) -> dict:
    parent, notation, child = split_key(key)
    if notation is None:
        return {parent: value}
    item = dict(resolved(REQUIRED.get(parent, {})))
    item.update(WITH.get(key, {}))
    item[child] = value
    return {parent: [item] if notation == "[]" else item}


@pytest.mark.parametrize("key", sorted(DOCUMENTED))
def test_each_documented_key_with_its_documented_default_passes_lint(key, lint):
    default = DOCUMENTED[key][2]
    if key in SAMPLES:
        value = resolved(SAMPLES[key])
    else:
        m = re.fullmatch(r"`(.+)`", default)
        assert m, f"{key}: the default {default!r} is not a JSON value in backticks; add a sample to SAMPLES"
        value = json.loads(m.group(1))
    config = config_with(key, value)
    result = lint(config)
    assert "unknown field" not in json.dumps(result), f"{key} is not accepted: {result}"
    assert result.get("ok"), f"{json.dumps(config)} is refused: {result}"


# ------------------------------------------------------------------------------------------ SECURITY.md's tests

def python_tests(file: str) -> set[str]:
    text = (TESTS / file).read_text()
    return set(re.findall(r"^\s*(?:async\s+)?def (test_\w+)\s*\(", text, flags=re.M))


def rust_functions() -> set[str]:
    names = set()
    for path in SRC.rglob("*.rs"):
        names.update(re.findall(r"\bfn\s+(\w+)", path.read_text()))
    return names


def rust_module_has_tests(module: str) -> bool:
    """A file `module.rs`, or a folder `module/`, anywhere under src/ that holds a `mod tests`."""
    files = list(SRC.rglob(f"{module}.rs"))
    for folder in SRC.rglob(module):
        if folder.is_dir():
            files.extend(folder.glob("*.rs"))
    return any(re.search(r"\bmod tests\b", p.read_text()) for p in files)


def name_pattern(name: str) -> re.Pattern:
    """A test name from the docs: `[param]` dropped, `*` and `...` as wildcards."""
    name = re.sub(r"\[.*\]$", "", name)
    parts = re.split(r"\*|\.\.\.", name)
    return re.compile(r"\w*".join(re.escape(p) for p in parts))


def security_references() -> list[tuple[str, str, str | None]]:
    """(kind, file or module, test name or None) for every test SECURITY.md names, in order. `::name` continues
    the previous reference's file or module."""
    refs: list[tuple[str, str, str | None]] = []
    last: tuple[str, str] | None = None
    for span in re.findall(r"`([^`]+)`", SECURITY.read_text()):
        if m := re.fullmatch(r"(test_\w+\.py)(?:::(\S+))?", span):
            last = ("py", m.group(1))
            refs.append(("py", m.group(1), m.group(2)))
        elif m := re.fullmatch(r"(\w+)::tests(?:::(\w+))?", span):
            last = ("rs", m.group(1))
            refs.append(("rs", m.group(1), m.group(2)))
        elif m := re.fullmatch(r"::(\S+)", span):
            assert last, f"SECURITY.md: `{span}` continues no earlier test reference"
            refs.append((last[0], last[1], m.group(1)))
    return refs


def test_security_md_names_tests():
    kinds = {kind for kind, _, _ in security_references()}
    assert kinds == {"py", "rs"}, "SECURITY.md should name integration and unit tests; did its notation change?"


def test_every_test_file_security_md_names_exists():
    missing = sorted({f for kind, f, _ in security_references() if kind == "py" and not (TESTS / f).is_file()})
    assert not missing, f"SECURITY.md names test files that do not exist in test-harness/tests: {missing}"


def test_every_integration_test_security_md_names_exists():
    missing = []
    for kind, file, name in security_references():
        if kind != "py" or name is None or not (TESTS / file).is_file():
            continue
        pattern = name_pattern(name)
        if not any(pattern.fullmatch(t) for t in python_tests(file)):
            missing.append(f"{file}::{name}")
    assert not missing, f"SECURITY.md names tests that do not exist: {missing}"


def test_every_unit_test_security_md_names_exists():
    functions = rust_functions()
    missing = []
    for kind, module, name in security_references():
        if kind != "rs":
            continue
        if name is None:
            if not rust_module_has_tests(module):
                missing.append(f"{module}::tests (no {module}.rs or {module}/ with `mod tests` under src/)")
        elif not any(name_pattern(name).fullmatch(f) for f in functions):
            missing.append(f"{module}::tests::{name} (no `fn {name}` under src/)")
    assert not missing, f"SECURITY.md names unit tests that do not exist: {missing}"


# ------------------------------------------------------------------------------------------ YAML blocks

def yaml_blocks() -> list[tuple[str, int, str]]:
    """(document, line number, text) of every ```yaml / ```yml block."""
    blocks = []
    for doc in YAML_DOCUMENTS:
        lines = doc.read_text().splitlines()
        i = 0
        while i < len(lines):
            if re.fullmatch(r"\s*```ya?ml\s*", lines[i]):
                j = i + 1
                while j < len(lines) and not re.fullmatch(r"\s*```\s*", lines[j]):
                    j += 1
                blocks.append((str(doc.relative_to(REPO)), i + 1, "\n".join(lines[i + 1:j])))
                i = j
            i += 1
    return blocks


def normalised(line: str) -> str:
    """A YAML line without its trailing comment, whitespace collapsed ('' for a comment or blank line)."""
    line = re.sub(r"(^|\s)#.*$", "", line)
    return " ".join(line.split())


EXCERPT = re.compile(r"#\s*from\s+(\S+)")
BLOCKS = yaml_blocks()


def test_the_documents_have_yaml_blocks():
    assert any(EXCERPT.match(text.strip()) for _, _, text in BLOCKS), "no excerpt block found"
    assert any(not EXCERPT.match(text.strip()) for _, _, text in BLOCKS), "no complete configuration found"


@pytest.mark.parametrize("doc,line,text", BLOCKS, ids=[f"{d}:{n}" for d, n, _ in BLOCKS])
def test_yaml_block_is_a_shipped_excerpt_or_validates(doc, line, text, pki_dir, tmp_path):
    m = EXCERPT.match(text.strip())
    if m:
        source = REPO / m.group(1)
        assert source.is_file(), f"{doc}:{line} quotes {m.group(1)}, which does not exist"
        shipped = {normalised(x) for x in source.read_text().splitlines()}
        absent = [x for x in text.splitlines() if normalised(x) and normalised(x) not in shipped]
        assert not absent, f"{doc}:{line}: lines not in {m.group(1)}: {absent}"
        return
    config = yaml.safe_load(text)
    assert isinstance(config, dict) and "static_resources" in config, (
        f"{doc}:{line}: a YAML block must start with `# from <shipped file>` or be a complete Envoy configuration")
    try:
        envoy_mod.require_wasm()
    except envoy_mod.WasmMissing as e:
        pytest.fail(str(e), pytrace=False)
    path = tmp_path / "block.yaml"
    path.write_text(text)
    proc = envoy_mod.validate(path)
    out = proc.stdout + proc.stderr
    assert proc.returncode == 0 and " OK" in out, f"{doc}:{line} does not validate:\n{out[-3000:]}"


# ------------------------------------------------------------------------------------------ links

def slug(heading: str) -> str:
    """GitHub's anchor for a heading."""
    text = re.sub(r"[^\w\- ]", "", heading.strip().lower().replace("`", ""))
    return text.replace(" ", "-")


def anchors(doc) -> set[str]:
    text = re.sub(r"```.*?```", "", doc.read_text(), flags=re.S)
    return {slug(m) for m in re.findall(r"^#+\s+(.+?)\s*$", text, flags=re.M)}


def test_relative_links_point_to_existing_files_and_headings():
    broken = []
    for doc in DOCUMENTS:
        text = re.sub(r"```.*?```", "", doc.read_text(), flags=re.S)
        for target in re.findall(r"\]\(([^)\s]+)\)", text):
            if re.match(r"[a-z]+:", target):
                continue
            file, _, anchor = target.partition("#")
            path = (doc.parent / file).resolve() if file else doc
            if not path.exists():
                broken.append(f"{doc.relative_to(REPO)}: {target}")
            elif anchor and path.suffix == ".md" and anchor not in anchors(path):
                broken.append(f"{doc.relative_to(REPO)}: {target} (no such heading)")
    assert not broken, f"broken links: {broken}"
