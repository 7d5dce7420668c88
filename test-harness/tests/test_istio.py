"""The Istio manifests (envoy/istio/**/*.yaml) are valid YAML, use only fields of Istio's published CRD schemas,
embed plugin configurations that `oauth-mtls lint` accepts, and patch Envoy with fields Envoy 1.40 accepts.

Istio's schemas come from the npm package @kubernetes-models/istio, the Kubernetes Gateway API's (gateway-api.yaml's
Gateway and HTTPRoute) from @kubernetes-models/gateway-api (both dependencies of test-harness/as, installed by
`npm ci`): ajv validators compiled from the projects' CRDs. They enforce types, enums, patterns and required
fields but not additionalProperties (the CRDs do not set it) nor the CRDs' CEL rules (x-kubernetes-validations;
the ones these manifests could break are checked in Python below), so every field is also checked strictly:
the validator runs on a Proxy of the manifest that records which keys the schema looked up, and a key the
schema never asked for (and that is not inside a free-form field such as `pluginConfig` or an EnvoyFilter's
`patch.value`) is reported as unknown. The free-form Envoy parts are checked by Envoy itself: each
EnvoyFilter's patches are rendered into an Envoy configuration (the way istiod applies them) that
`envoy --mode validate` loads.
"""
from __future__ import annotations

import copy
import json
import pathlib
import re
import shutil
import subprocess

import pytest
import yaml

from oauth_mtls_harness import envoy as envoy_mod

ISTIO_DIR = envoy_mod.ENVOY_DIR / "istio"
AS_DIR = envoy_mod.REPO / "test-harness" / "as"
CLI = envoy_mod.REPO / "target" / "release" / "oauth-mtls"
WASM_TYPE = "type.googleapis.com/envoy.extensions.filters.http.wasm.v3.Wasm"
GATEWAY_SPIFFE = "spiffe://cluster.local/ns/istio-system/sa/istio-ingressgateway-service-account"
HCM = "envoy.filters.network.http_connection_manager"

# Fields whose content the CRD leaves open (x-kubernetes-preserve-unknown-fields): checked otherwise.
FREE_FORM = ["spec.pluginConfig", "spec.configPatches[].patch.value"]

FILES = sorted(p.relative_to(ISTIO_DIR).as_posix() for p in ISTIO_DIR.rglob("*.yaml"))


def load_docs(rel: str) -> list[dict]:
    with open(ISTIO_DIR / rel) as f:
        return [d for d in yaml.safe_load_all(f) if d is not None]


def all_docs() -> list[tuple[str, dict]]:
    return [(rel, d) for rel in FILES for d in load_docs(rel)]


def by_kind(kind: str) -> list[tuple[str, dict]]:
    return [(rel, d) for rel, d in all_docs() if d["kind"] == kind]


# ------------------------------------------------------------------------------ Istio's CRD schemas

# Runs each document through the compiled validator of its apiVersion/kind and reports schema errors and the
# keys the schema never looked up (see the module docstring).
SCHEMA_CHECK_JS = r"""
import { pathToFileURL } from "node:url";
import { readFileSync } from "node:fs";
import path from "node:path";
const root = process.argv[1];
const input = JSON.parse(readFileSync(0, "utf8"));
// [package, compiled validator] of an apiVersion/kind: Istio's names its group, version and kind
// (NetworkingIstioIoV1alpha3EnvoyFilter), the Gateway API's its Go package (IoK8sSigsGatewayApiApisV1Gateway).
function schemaFile(apiVersion, kind) {
  const [group, version] = apiVersion.split("/");
  const v = version[0].toUpperCase() + version.slice(1);
  if (group === "gateway.networking.k8s.io") return ["gateway-api", "IoK8sSigsGatewayApiApis" + v + kind];
  const g = group.split(".").map(s => s[0].toUpperCase() + s.slice(1)).join("");
  return ["istio", g + v + kind];
}
function track(value, p, seen) {
  if (value === null || typeof value !== "object") return value;
  const isArr = Array.isArray(value);
  return new Proxy(value, {
    get(t, k, r) {
      const v = Reflect.get(t, k, r);
      if (typeof k !== "string") return v;
      if (isArr) return /^\d+$/.test(k) ? track(v, p + "[]", seen) : v;
      seen.add(p + "." + k);
      return Object.prototype.hasOwnProperty.call(t, k) ? track(v, p + "." + k, seen) : v;
    },
    has(t, k) { if (typeof k === "string" && !isArr) seen.add(p + "." + k); return Reflect.has(t, k); },
    // a map (additionalProperties: {...}) is enumerated: all its keys are the schema's
    ownKeys(t) { if (!isArr) seen.add(p + ".*"); return Reflect.ownKeys(t); },
  });
}
function unknown(value, p, seen, free, out) {
  if (free.includes(p)) return;
  if (Array.isArray(value)) { value.forEach(v => unknown(v, p + "[]", seen, free, out)); return; }
  if (value === null || typeof value !== "object") return;
  const map = seen.has(p + ".*");
  for (const k of Object.keys(value)) {
    if (!map && !seen.has(p + "." + k)) out.push((p + "." + k).slice(1));
    unknown(value[k], p + "." + k, seen, free, out);
  }
}
const results = [];
for (const { doc, free } of input) {
  const [pkg, schema] = schemaFile(doc.apiVersion, doc.kind);
  const name = pkg + ":" + schema;
  const file = path.join(root, "node_modules/@kubernetes-models", pkg, "_schemas", schema + ".js");
  let validate;
  try { ({ validate } = await import(pathToFileURL(file).href)); }
  catch (e) { results.push({ schema: name, missing: String(e) }); continue; }
  const seen = new Set();
  const ok = validate(track(doc, "", seen));
  const unknownFields = [];
  unknown(doc, "", seen, free.map(f => "." + f), unknownFields);
  results.push({ schema: name, ok, errors: validate.errors || [], unknownFields });
}
process.stdout.write(JSON.stringify(results));
"""


def _require_istio_schemas() -> None:
    for name in ("istio", "gateway-api"):
        pkg = AS_DIR / "node_modules" / "@kubernetes-models" / name / "_schemas"
        if shutil.which("node") is None or not pkg.is_dir():
            pytest.fail(f"CRD schemas are missing ({pkg}): run `make node-deps` (npm ci in {AS_DIR}), which "
                        f"installs @kubernetes-models/{name}; Node.js must be on the PATH", pytrace=False)


def schema_check(docs: list[dict]) -> list[dict]:
    _require_istio_schemas()
    proc = subprocess.run(["node", "--input-type=module", "-e", SCHEMA_CHECK_JS, str(AS_DIR)],
                          input=json.dumps([{"doc": d, "free": FREE_FORM} for d in docs]),
                          capture_output=True, text=True, timeout=120, cwd=AS_DIR)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return json.loads(proc.stdout)


def problems(result: dict) -> list[str]:
    if "missing" in result:
        return [f"no schema {result['schema']} in @kubernetes-models: {result['missing']}"]
    out = [f"{e['instancePath'] or '/'}: {e['keyword']} {json.dumps(e.get('params'))}" for e in result["errors"]]
    out += [f"{f}: not a field of {result['schema']}" for f in result["unknownFields"]]
    return out


def test_istio_directory_has_the_documented_manifests():
    assert {"gateway.yaml", "filter-at-gateway.yaml", "filter-in-as-sidecar.yaml", "as-only-from-gateway.yaml",
            "gateway-api.yaml", "unsupported/wasmplugin.yaml"} <= set(FILES)


@pytest.mark.parametrize("rel", FILES)
def test_manifest_is_valid_yaml_with_kubernetes_objects(rel):
    docs = load_docs(rel)
    assert docs
    for d in docs:
        assert {"apiVersion", "kind", "metadata", "spec"} <= set(d), d
        assert d["metadata"].get("name") and d["metadata"].get("namespace"), d["metadata"]


@pytest.mark.parametrize("rel", FILES)
def test_manifest_fields_exist_in_crd_schemas(rel):
    docs = load_docs(rel)
    results = schema_check(docs)
    report = {f"{d['kind']}/{d['metadata']['name']}": problems(r) for d, r in zip(docs, results, strict=True)}
    assert not any(report.values()), json.dumps(report, indent=1)


def test_schema_check_catches_unknown_fields_and_bad_values():
    """The strict check itself can fail: misspelled fields at several depths and a bad enum are reported."""
    (_, wp), = by_kind("WasmPlugin")
    (_, ef), *_ = [x for x in by_kind("EnvoyFilter") if x[1]["metadata"]["name"] == "oauth-mtls-filter"]
    wp, ef = copy.deepcopy(wp), copy.deepcopy(ef)
    wp["spec"]["failStrategy"] = "FAIL_CLOSED"  # Envoy's spelling, not Istio's
    wp["spec"]["allowOnHeadersStopIteration"] = True  # the field WasmPlugin does not have
    wp["metadata"]["labelz"] = {}
    ef["spec"]["configPatches"][1]["match"]["listener"]["filterChain"]["snii"] = "x"
    gw, route = (copy.deepcopy(gateway_api(kind)) for kind in ("Gateway", "HTTPRoute"))
    gw["spec"]["listeners"][0]["tls"]["mode"] = "Terminated"
    gw["spec"]["listeners"][0]["tls"]["frontendValidation"] = {}  # the pre-v1.4 place, gone from the API
    route["spec"]["rules"][0]["backendRefs"][0]["prot"] = 8080
    r_wp, r_ef, r_gw, r_route = schema_check([wp, ef, gw, route])
    assert any("failStrategy" in p and "enum" in p for p in problems(r_wp)), problems(r_wp)
    assert "spec.allowOnHeadersStopIteration" in r_wp["unknownFields"]
    assert "metadata.labelz" in r_wp["unknownFields"]
    assert r_ef["unknownFields"] == ["spec.configPatches[].match.listener.filterChain.snii"], problems(r_ef)
    assert any("/spec/listeners/0/tls/mode" in p and "enum" in p for p in problems(r_gw)), problems(r_gw)
    assert r_gw["unknownFields"] == ["spec.listeners[].tls.frontendValidation"], problems(r_gw)
    assert r_route["unknownFields"] == ["spec.rules[].backendRefs[].prot"], problems(r_route)


# ------------------------------------------------------------------------------ the plugin configurations

def wasm_extension_configs(d: dict) -> list[dict]:
    """The EXTENSION_CONFIG values (TypedExtensionConfig) of an EnvoyFilter that carry the wasm filter."""
    return [p["patch"]["value"] for p in d["spec"]["configPatches"]
            if p["applyTo"] == "EXTENSION_CONFIG" and p["patch"]["value"]["typed_config"]["@type"] == WASM_TYPE]


def plugin_configs() -> list[tuple[str, dict]]:
    """(label, plugin JSON) of every embedded configuration: WasmPlugin pluginConfig, EnvoyFilter JSON strings."""
    out = []
    for rel, d in by_kind("WasmPlugin"):
        out.append((f"{rel}:{d['metadata']['name']}", d["spec"]["pluginConfig"]))
    for rel, d in by_kind("EnvoyFilter"):
        for ec in wasm_extension_configs(d):
            out.append((f"{rel}:{ec['name']}", json.loads(ec["typed_config"]["config"]["configuration"]["value"])))
    return out


def _require_cli() -> None:
    if not CLI.is_file():
        pytest.fail(f"the oauth-mtls CLI is missing: {CLI}; build it with `cargo build --release --bin oauth-mtls`",
                    pytrace=False)


@pytest.mark.parametrize("label,plugin", plugin_configs(), ids=[x[0] for x in plugin_configs()])
def test_embedded_plugin_configuration_passes_oauth_mtls_lint(label, plugin, tmp_path):
    _require_cli()
    f = tmp_path / "plugin.json"
    f.write_text(json.dumps(plugin))
    proc = subprocess.run([str(CLI), "lint", str(f)], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, f"{label}: {proc.stdout}{proc.stderr}"


def test_lint_refuses_a_broken_embedded_configuration(tmp_path):
    """The lint step can fail: the gateway's configuration with a misspelled registry key is refused."""
    _require_cli()
    plugin = dict(plugin_configs()[0][1])
    plugin["registry"] = dict(plugin["registry"], refresh=30)
    f = tmp_path / "plugin.json"
    f.write_text(json.dumps(plugin))
    proc = subprocess.run([str(CLI), "lint", str(f)], capture_output=True, text=True, timeout=60)
    assert proc.returncode != 0 and "registry.refresh" in proc.stdout + proc.stderr, proc.stdout + proc.stderr


def test_wasmplugin_mirrors_the_gateway_envoyfilter_configuration():
    (_, wp), = by_kind("WasmPlugin")
    (_, ef), = [x for x in by_kind("EnvoyFilter") if x[1]["metadata"]["name"] == "oauth-mtls-filter"]
    (ec,) = wasm_extension_configs(ef)
    assert wp["spec"]["pluginConfig"] == json.loads(ec["typed_config"]["config"]["configuration"]["value"])
    assert wp["spec"]["phase"] == "AUTHN"
    assert wp["spec"]["failStrategy"] == "FAIL_CLOSE"
    assert wp["spec"]["pluginName"] == ec["typed_config"]["config"]["root_id"]
    assert wp["spec"]["url"] == ec["typed_config"]["config"]["vm_config"]["code"]["remote"]["http_uri"]["uri"]


def test_every_wasm_extension_stops_iteration_reloads_a_failed_vm_and_is_referenced():
    """FAIL_RELOAD still fails closed (no request passes a failed VM: test_failure_policy.py); with an explicit
    backoff."""
    for rel, d in by_kind("EnvoyFilter"):
        ecs = wasm_extension_configs(d)
        refs = [p for p in d["spec"]["configPatches"] if p["applyTo"] == "HTTP_FILTER"]
        for ec in ecs:
            cfg = ec["typed_config"]["config"]
            assert cfg["allow_on_headers_stop_iteration"] is True, rel
            assert cfg["failure_policy"] == "FAIL_RELOAD" and "fail_open" not in cfg, rel
            assert cfg["reload_config"]["backoff"]["base_interval"] == "1s", rel
            (ref,) = [p for p in refs if p["patch"]["value"]["name"] == ec["name"]]
            assert ref["patch"]["operation"] == "INSERT_FIRST"
            assert ref["patch"]["value"]["config_discovery"]["type_urls"] == [WASM_TYPE]
            # the HTTP filter and the extension config apply to the same proxies
            ext_patch = [p for p in d["spec"]["configPatches"] if p["patch"]["value"] is ec][0]
            assert ext_patch["match"]["context"] == ref["match"]["context"]


FILTER_MAX_BODY = 1048576  # the largest max_body_bytes the filter accepts


def test_where_the_filter_runs_envoy_buffers_more_than_its_largest_body_and_refuses_underscored_names():
    """Per manifest with the filter: a LISTENER patch in the filter's context raises the buffer limit above
    max_body_bytes' maximum (the filter answers 413, not Envoy), and every HTTP connection manager patch rejects
    header names with underscores (x_mtls_client_id would reach the AS as x-mtls-client-id)."""
    for rel in FILES:
        efs = [d for r, d in by_kind("EnvoyFilter") if r == rel]
        contexts = {p["match"]["context"] for d in efs for p in d["spec"]["configPatches"]
                    if p["applyTo"] == "EXTENSION_CONFIG"}
        if not contexts:
            continue
        listeners = [p for d in efs for p in d["spec"]["configPatches"] if p["applyTo"] == "LISTENER"]
        for ctx in contexts:
            limits = [p["patch"]["value"]["per_connection_buffer_limit_bytes"] for p in listeners
                      if p["match"]["context"] == ctx and p["patch"]["operation"] == "MERGE"]
            assert limits and all(v > FILTER_MAX_BODY for v in limits), (rel, ctx, limits)
        hcms = [p for d in efs for p in d["spec"]["configPatches"] if p["applyTo"] == "NETWORK_FILTER"]
        assert hcms, rel
        for p in hcms:
            opts = p["patch"]["value"]["typed_config"]["common_http_protocol_options"]
            assert opts["headers_with_underscores_action"] == "REJECT_REQUEST", rel


def test_clusters_are_istio_outbound_clusters_of_declared_services():
    """registry.cluster and jwks_cluster are `outbound|port||host`; external hosts have a ServiceEntry and a
    TLS-originating DestinationRule in the namespace of the proxy that runs the filter."""
    pattern = re.compile(r"^outbound\|(\d+)\|\|([a-z0-9.-]+)$")
    for rel, d in by_kind("EnvoyFilter"):
        ns = d["metadata"]["namespace"]
        entries = {(h, p["number"]) for r, se in by_kind("ServiceEntry")
                   if r == rel and se["metadata"]["namespace"] == ns
                   for h in se["spec"]["hosts"] for p in se["spec"]["ports"]}
        tls = {dr["spec"]["host"]: dr["spec"]["trafficPolicy"]["tls"]["mode"] for r, dr in by_kind("DestinationRule")
               if r == rel and dr["metadata"]["namespace"] == ns}
        for ec in wasm_extension_configs(d):
            plugin = json.loads(ec["typed_config"]["config"]["configuration"]["value"])
            m = pattern.match(plugin["registry"]["cluster"])
            assert m and m.group(2).endswith(".svc.cluster.local"), plugin["registry"]["cluster"]
            assert plugin["registry"]["authority"] == m.group(2)
            j = pattern.match(plugin["jwks_cluster"])
            assert j and (j.group(2), int(j.group(1))) in entries, (plugin["jwks_cluster"], entries)
            assert tls[j.group(2)] == "SIMPLE"


def test_sidecar_deployment_trusts_only_the_gateway_and_keeps_its_xfcc():
    (_, d), = [x for x in by_kind("EnvoyFilter") if x[1]["metadata"]["name"] == "oauth-mtls-as-sidecar"]
    (ec,) = wasm_extension_configs(d)
    plugin = json.loads(ec["typed_config"]["config"]["configuration"]["value"])
    assert plugin["certificate_source"] == "xfcc"
    assert plugin["trusted_forwarders"] == [{"uri_san": GATEWAY_SPIFFE}]
    (hcm,) = [p for p in d["spec"]["configPatches"] if p["applyTo"] == "NETWORK_FILTER"]
    assert hcm["match"]["context"] == "SIDECAR_INBOUND"
    assert hcm["patch"]["value"]["typed_config"]["forward_client_cert_details"] == "FORWARD_ONLY"
    (pa,) = [x for rel, x in by_kind("PeerAuthentication") if rel == "filter-in-as-sidecar.yaml"]
    assert pa["spec"]["mtls"]["mode"] == "STRICT"
    assert pa["spec"]["selector"]["matchLabels"] == d["spec"]["workloadSelector"]["labels"]


def test_only_the_gateways_identity_reaches_the_authorization_server():
    """Deployment rule 1 in the mesh (as-only-from-gateway.yaml): the AS workload (the one the sidecar
    EnvoyFilter selects, and the registry cluster's host) takes only Istio mTLS, and an ALLOW policy with one
    rule admits only the gateway's service account, whose SPIFFE ID the sidecar deployment trusts for XFCC."""
    rel = "as-only-from-gateway.yaml"
    (pa,) = [x for r, x in by_kind("PeerAuthentication") if r == rel]
    (ap,) = [x for r, x in by_kind("AuthorizationPolicy") if r == rel]
    (_, sidecar), = [x for x in by_kind("EnvoyFilter") if x[1]["metadata"]["name"] == "oauth-mtls-as-sidecar"]
    as_labels = sidecar["spec"]["workloadSelector"]["labels"]
    assert pa["spec"] == {"selector": {"matchLabels": as_labels}, "mtls": {"mode": "STRICT"}}
    assert pa in [x for r, x in by_kind("PeerAuthentication") if r == "filter-in-as-sidecar.yaml"]
    assert ap["metadata"]["namespace"] == pa["metadata"]["namespace"] == sidecar["metadata"]["namespace"]
    assert ap["spec"]["selector"]["matchLabels"] == as_labels
    assert ap["spec"]["action"] == "ALLOW"
    (rule,) = ap["spec"]["rules"]
    assert rule == {"from": [{"source": {"principals": [GATEWAY_SPIFFE.removeprefix("spiffe://")]}}]}
    registry_hosts = {json.loads(ec["typed_config"]["config"]["configuration"]["value"])["registry"]["authority"]
                      for _, d in by_kind("EnvoyFilter") for ec in wasm_extension_configs(d)}
    assert registry_hosts == {f"oauth-as.{ap['metadata']['namespace']}.svc.cluster.local"}


def test_gateway_asks_for_client_certificates_and_accepts_self_signed_ones_without_resumption():
    (_, gw), = [x for x in by_kind("Gateway") if x[1]["apiVersion"].startswith("networking.istio.io/")]
    (server,) = gw["spec"]["servers"]
    assert server["tls"]["mode"] == "OPTIONAL_MUTUAL"
    (_, d), = [x for x in by_kind("EnvoyFilter") if x[1]["metadata"]["name"] == "oauth-mtls-gateway-tls"]
    (fc,) = [p for p in d["spec"]["configPatches"] if p["applyTo"] == "FILTER_CHAIN"]
    assert fc["match"]["listener"]["filterChain"]["sni"] in server["hosts"]
    tc = fc["patch"]["value"]["transport_socket"]["typed_config"]
    assert tc["disable_stateless_session_resumption"] and tc["disable_stateful_session_resumption"]
    dvc = tc["common_tls_context"]["combined_validation_context"]["default_validation_context"]
    assert dvc["trust_chain_verification"] == "ACCEPT_UNTRUSTED"


# ------------------------------------------------------------------------------ the Gateway API variant

GATEWAY_API = "gateway-api.yaml"
GATEWAY_API_GROUP = "gateway.networking.k8s.io"


def gateway_api(kind: str) -> dict:
    """gateway-api.yaml's one object of `kind` in the Kubernetes Gateway API group."""
    (d,) = [d for d in load_docs(GATEWAY_API)
            if d["kind"] == kind and d["apiVersion"].startswith(GATEWAY_API_GROUP + "/")]
    return d


def gateway_api_listener() -> dict:
    (listener,) = gateway_api("Gateway")["spec"]["listeners"]
    return listener


def istio_gateway() -> dict:
    (_, gw), = [x for x in by_kind("Gateway") if x[1]["apiVersion"].startswith("networking.istio.io/")]
    return gw


def test_gateway_api_gateway_asks_for_client_certificates_the_way_istio_reads_it_since_1_27():
    """OPTIONAL_MUTUAL through Istio's listener option (the CA from the certificate secret's ca.crt), not
    Gateway API's spec.tls.frontend, which Istio 1.28 and 1.29 turn into MUTUAL whatever its mode."""
    gw, listener = gateway_api("Gateway"), gateway_api_listener()
    assert gw["spec"]["gatewayClassName"] == "istio"
    assert listener["protocol"] == "HTTPS" and listener["hostname"] in istio_gateway()["spec"]["servers"][0]["hosts"]
    tls = listener["tls"]
    # the CRD's CEL rule: Terminate needs certificateRefs; one in the Gateway's namespace needs no ReferenceGrant
    assert tls["mode"] == "Terminate"
    (ref,) = tls["certificateRefs"]
    assert ref.get("kind", "Secret") == "Secret" and "namespace" not in ref
    assert ref["name"] == istio_gateway()["spec"]["servers"][0]["tls"]["credentialName"]
    # no gateway.istio.io/tls-cipher-suites: the FILTER_CHAIN patch's cipher list would be appended to it
    assert tls["options"] == {"gateway.istio.io/tls-terminate-mode": "OPTIONAL_MUTUAL"}
    assert "tls" not in gw["spec"]


def test_gateway_api_route_sends_the_public_host_to_the_as_and_nothing_to_its_registry():
    gw, route, listener = gateway_api("Gateway"), gateway_api("HTTPRoute"), gateway_api_listener()
    (parent,) = route["spec"]["parentRefs"]
    assert parent == {"group": GATEWAY_API_GROUP, "kind": "Gateway", "name": gw["metadata"]["name"],
                      "namespace": gw["metadata"]["namespace"], "sectionName": listener["name"]}
    # the listener admits routes from the route's namespace only
    assert listener["allowedRoutes"]["namespaces"] == {
        "from": "Selector",
        "selector": {"matchLabels": {"kubernetes.io/metadata.name": route["metadata"]["namespace"]}}}
    assert route["spec"]["hostnames"] == [listener["hostname"]]
    (rule,) = route["spec"]["rules"]
    assert set(rule) == {"backendRefs"}  # every path, unmodified
    (backend,) = rule["backendRefs"]
    # the Service and port the Istio Gateway's VirtualService routes to; not the registry's port
    (_, vs), = by_kind("VirtualService")
    (dest,) = [r["destination"] for h in vs["spec"]["http"] for r in h["route"]]
    assert dest == {"host": f"{backend['name']}.{route['metadata']['namespace']}.svc.cluster.local",
                    "port": {"number": backend["port"]}}
    assert set(backend) == {"name", "port"}
    registry = {json.loads(ec["typed_config"]["config"]["configuration"]["value"])["registry"]["cluster"]
                for r, d in by_kind("EnvoyFilter") if r == GATEWAY_API for ec in wasm_extension_configs(d)}
    assert registry == {f"outbound|8081||{dest['host']}"} and backend["port"] != 8081


def test_gateway_api_envoy_filters_attach_to_the_gateway_by_target_ref_on_its_listener():
    """targetRefs to the Gateway (Istio's policy attachment for Gateway API gateways, Istio >= 1.27), within
    the CEL rules of Istio's EnvoyFilter CRD; every patch on the Gateway's port and host (Istio's Gateway API
    deployments listen on the listener's port itself, not on a remapped 8443)."""
    gw, listener = gateway_api("Gateway"), gateway_api_listener()
    efs = [d for r, d in by_kind("EnvoyFilter") if r == GATEWAY_API]
    assert len(efs) == 2
    for d in efs:
        # CEL: "only one of targetRefs or workloadSelector can be set"; targetRef namespace must be empty
        assert "workloadSelector" not in d["spec"]
        assert d["spec"]["targetRefs"] == [
            {"group": GATEWAY_API_GROUP, "kind": "Gateway", "name": gw["metadata"]["name"]}]
        assert d["metadata"]["namespace"] == gw["metadata"]["namespace"]
        for p in d["spec"]["configPatches"]:
            assert p["match"]["context"] == "GATEWAY"
            if p["applyTo"] == "EXTENSION_CONFIG":
                continue
            lm = p["match"]["listener"]
            assert lm["portNumber"] == listener["port"]
            if "filterChain" in lm:
                assert lm["filterChain"]["sni"] == listener["hostname"]


def _normalized_typed_config(ec: dict) -> dict:
    tc = copy.deepcopy(ec["typed_config"])
    cfg = tc["config"]["configuration"]
    cfg["value"] = json.loads(cfg["value"])
    return tc


def test_gateway_api_variant_patches_and_configures_the_gateway_like_the_istio_gateway():
    """The same edge settings and filter configuration as filter-at-gateway.yaml, and the FAPI TLS profile
    gateway.yaml sets with Istio Gateway fields, here as Envoy tls_params."""
    classic = {d["metadata"]["name"]: d for r, d in by_kind("EnvoyFilter") if r == "filter-at-gateway.yaml"}
    new = {d["metadata"]["name"]: d for r, d in by_kind("EnvoyFilter") if r == GATEWAY_API}

    def patches(d: dict, apply_to: str) -> list[dict]:
        return [p["patch"]["value"] for p in d["spec"]["configPatches"] if p["applyTo"] == apply_to]

    old_tls, new_tls = classic["oauth-mtls-gateway-tls"], new["oauth-mtls-gateway-api-tls"]
    for apply_to in ("NETWORK_FILTER", "LISTENER"):
        assert patches(new_tls, apply_to) == patches(old_tls, apply_to), apply_to
    (old_fc,), (new_fc,) = patches(old_tls, "FILTER_CHAIN"), patches(new_tls, "FILTER_CHAIN")
    new_fc = copy.deepcopy(new_fc)
    params = new_fc["transport_socket"]["typed_config"]["common_tls_context"].pop("tls_params")
    assert new_fc == old_fc
    fapi = istio_gateway()["spec"]["servers"][0]["tls"]
    envoy_version = {"TLSV1_2": "TLSv1_2", "TLSV1_3": "TLSv1_3"}
    assert params == {"tls_minimum_protocol_version": envoy_version[fapi["minProtocolVersion"]],
                      "tls_maximum_protocol_version": envoy_version[fapi["maxProtocolVersion"]],
                      "cipher_suites": fapi["cipherSuites"]}
    (old_ec,) = wasm_extension_configs(classic["oauth-mtls-filter"])
    (new_ec,) = wasm_extension_configs(new["oauth-mtls-gateway-api-filter"])
    assert new_ec["name"] == f"{new_tls['metadata']['namespace']}.oauth-mtls"
    assert _normalized_typed_config(new_ec) == _normalized_typed_config(old_ec)


def test_gateway_api_variant_admits_only_its_own_gateway_to_the_authorization_server():
    """Deployment rule 1 for the Gateway API gateway: as-only-from-gateway.yaml's objects (same names, so one
    replaces the other) with the identity of the Deployment Istio creates, `<gateway>-<gatewayClassName>`."""
    gw = gateway_api("Gateway")
    sa = f"{gw['metadata']['name']}-{gw['spec']['gatewayClassName']}"
    (pa,) = [x for r, x in by_kind("PeerAuthentication") if r == GATEWAY_API]
    (ap,) = [x for r, x in by_kind("AuthorizationPolicy") if r == GATEWAY_API]
    (old_pa,) = [x for r, x in by_kind("PeerAuthentication") if r == "as-only-from-gateway.yaml"]
    (old_ap,) = [x for r, x in by_kind("AuthorizationPolicy") if r == "as-only-from-gateway.yaml"]
    assert pa == old_pa
    assert ap["metadata"] == old_ap["metadata"]
    expected = copy.deepcopy(old_ap["spec"])
    expected["rules"] = [{"from": [{"source": {"principals": [
        f"cluster.local/ns/{gw['metadata']['namespace']}/sa/{sa}"]}}]}]
    assert ap["spec"] == expected
    assert gateway_api("HTTPRoute")["metadata"]["namespace"] == ap["metadata"]["namespace"]


# ------------------------------------------------------------------------------ Envoy accepts the patches

def merge(dst: dict, src: dict) -> dict:
    """Proto-merge semantics on JSON (what istiod does for MERGE): messages merge, lists append, scalars replace."""
    out = copy.deepcopy(dst)
    for k, v in src.items():
        if isinstance(v, dict) and isinstance(out.get(k), dict):
            out[k] = merge(out[k], v)
        elif isinstance(v, list) and isinstance(out.get(k), list):
            out[k] = out[k] + copy.deepcopy(v)
        else:
            out[k] = copy.deepcopy(v)
    return out


def static_cluster(name: str, port: int, http2: bool = False) -> dict:
    c = {"name": name, "type": "STATIC", "connect_timeout": "1s",
         "load_assignment": {"cluster_name": name, "endpoints": [{"lb_endpoints": [{"endpoint": {
             "address": {"socket_address": {"address": "127.0.0.1", "port_value": port}}}}]}]}}
    if http2:
        c["typed_extension_protocol_options"] = {"envoy.extensions.upstreams.http.v3.HttpProtocolOptions": {
            "@type": "type.googleapis.com/envoy.extensions.upstreams.http.v3.HttpProtocolOptions",
            "explicit_http_config": {"http2_protocol_options": {}}}}
    return c


def render_envoy_filter(d: dict, pki_dir: pathlib.Path, wasm: pathlib.Path) -> dict:
    """An Envoy bootstrap with one listener shaped like the one Istio builds (TLS with certificates and a
    combined validation context fed by SDS, an HTTP connection manager), the EnvoyFilter's LISTENER, FILTER_CHAIN
    and NETWORK_FILTER patches merged in, its HTTP_FILTER (ECDS over ADS) inserted first, and each wasm
    EXTENSION_CONFIG also inlined as a second filter, the module read from the built .wasm instead of the
    oci:// URL Istio's agent would have downloaded."""
    tls = {"@type": "type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.DownstreamTlsContext",
           "require_client_certificate": False,
           "common_tls_context": {
               "tls_certificates": [{"certificate_chain": {"filename": str(pki_dir / "server.pem")},
                                     "private_key": {"filename": str(pki_dir / "server.key")}}],
               "combined_validation_context": {
                   "default_validation_context": {},
                   "validation_context_sds_secret_config": {"name": "client-ca"}}}}
    hcm = {"@type": "type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3."
                    "HttpConnectionManager",
           "stat_prefix": "istio_render",
           "route_config": {"virtual_hosts": [{"name": "all", "domains": ["*"], "routes": [
               {"match": {"prefix": "/"}, "route": {"cluster": "upstream"}}]}]},
           "http_filters": [{"name": "envoy.filters.http.router", "typed_config": {
               "@type": "type.googleapis.com/envoy.extensions.filters.http.router.v3.Router"}}]}
    clusters = [static_cluster("upstream", 9), static_cluster("xds", 9, http2=True)]
    first: list[dict] = []
    listener_patch: dict = {}
    for p in d["spec"]["configPatches"]:
        op, value = p["patch"]["operation"], p["patch"]["value"]
        if p["applyTo"] == "LISTENER":
            assert op == "MERGE"
            listener_patch = merge(listener_patch, value)
        elif p["applyTo"] == "FILTER_CHAIN":
            assert op == "MERGE" and value["transport_socket"]["name"] == "envoy.transport_sockets.tls"
            patch = value["transport_socket"]["typed_config"]
            assert patch["@type"] == tls["@type"]
            tls = merge(tls, patch)
        elif p["applyTo"] == "NETWORK_FILTER":
            assert op == "MERGE" and value["name"] == HCM
            assert p["match"]["listener"]["filterChain"]["filter"]["name"] == HCM
            assert value["typed_config"]["@type"] == hcm["@type"]
            hcm = merge(hcm, value["typed_config"])
        elif p["applyTo"] == "HTTP_FILTER":
            assert op == "INSERT_FIRST"
            first.insert(0, copy.deepcopy(value))
        elif p["applyTo"] == "EXTENSION_CONFIG":
            assert op == "ADD"  # istiod ignores any other operation on EXTENSION_CONFIG
            inline = copy.deepcopy(value["typed_config"])
            inline["config"]["vm_config"]["code"] = {"local": {"filename": str(wasm)}}
            first.append({"name": value["name"] + "-inline", "typed_config": inline})
            plugin = json.loads(inline["config"]["configuration"]["value"])
            for name in (plugin.get("registry", {}).get("cluster"), plugin.get("jwks_cluster")):
                if name:
                    clusters.append(static_cluster(name, 9))
        else:
            raise AssertionError(f"no renderer for applyTo {p['applyTo']}")
    hcm["http_filters"] = first + hcm["http_filters"]
    return {
        "node": {"id": "istio-render", "cluster": "istio-render"},
        "admin": {"address": {"socket_address": {"address": "127.0.0.1", "port_value": 0}}},
        "dynamic_resources": {"ads_config": {"api_type": "GRPC", "transport_api_version": "V3",
                                             "grpc_services": [{"envoy_grpc": {"cluster_name": "xds"}}]}},
        "static_resources": {
            "secrets": [{"name": "client-ca", "validation_context": {
                "trusted_ca": {"filename": str(pki_dir / "ca.pem")}}}],
            "listeners": [merge({"name": "istio_render",
                                 "address": {"socket_address": {"address": "127.0.0.1", "port_value": 0}},
                                 "filter_chains": [{
                                     "transport_socket": {"name": "envoy.transport_sockets.tls", "typed_config": tls},
                                     "filters": [{"name": HCM, "typed_config": hcm}]}]}, listener_patch)],
            "clusters": clusters,
        },
    }


ENVOY_FILTERS = [(rel, d) for rel, d in by_kind("EnvoyFilter")]


@pytest.mark.parametrize("rel,d", ENVOY_FILTERS, ids=[d["metadata"]["name"] for _, d in ENVOY_FILTERS])
def test_envoy_filter_patches_are_accepted_by_envoy(rel, d, pki_dir, tmp_path):
    try:
        wasm = envoy_mod.require_wasm()
    except envoy_mod.WasmMissing as e:
        pytest.fail(str(e), pytrace=False)
    cfg = render_envoy_filter(d, pki_dir, wasm)
    f = tmp_path / "envoy.yaml"
    f.write_text(yaml.safe_dump(cfg, sort_keys=False))
    cmd = envoy_mod.envoy_command() + ["--mode", "validate", "-c", str(f), "-l", "info", "--use-dynamic-base-id"]
    proc = subprocess.run(cmd, cwd=tmp_path, capture_output=True, text=True, timeout=120)
    out = proc.stdout + proc.stderr
    assert proc.returncode == 0 and " OK" in out, f"{rel}: {out[-4000:]}"


def test_envoy_rejects_a_misspelled_patch_field(pki_dir, tmp_path):
    """The Envoy check can fail: a patch field Envoy does not know is refused."""
    try:
        wasm = envoy_mod.require_wasm()
    except envoy_mod.WasmMissing as e:
        pytest.fail(str(e), pytrace=False)
    (_, d), = [x for x in ENVOY_FILTERS if x[1]["metadata"]["name"] == "oauth-mtls-gateway-tls"]
    d = copy.deepcopy(d)
    d["spec"]["configPatches"][0]["patch"]["value"]["transport_socket"]["typed_config"][
        "disable_stateless_session_resumptions"] = True
    f = tmp_path / "envoy.yaml"
    f.write_text(yaml.safe_dump(render_envoy_filter(d, pki_dir, wasm), sort_keys=False))
    cmd = envoy_mod.envoy_command() + ["--mode", "validate", "-c", str(f), "-l", "info", "--use-dynamic-base-id"]
    proc = subprocess.run(cmd, cwd=tmp_path, capture_output=True, text=True, timeout=120)
    assert proc.returncode != 0 and "disable_stateless_session_resumptions" in proc.stdout + proc.stderr
