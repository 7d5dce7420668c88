"""What Envoy 1.40 does when the filter's VM fails at runtime (a trap: `unreachable`, an allocation failure,
a Rust panic with `panic = "abort"`), per `failure_policy`. The shipped configs set FAIL_RELOAD.

Envoy's FailurePolicy (extensions.wasm.v3): FAIL_CLOSED — every later request through the failed VM's plugin
gets a local 503, for the life of the worker; FAIL_OPEN — the failed plugin is skipped and requests continue
down the filter chain; FAIL_RELOAD — the next request on that worker gets a new VM (cloned from the loaded
module), unless the worker's last VM was created less than the backoff ago (`reload_config.backoff.base_interval`,
default 1 s; Envoy draws each wait from [base, 1.5 base)): until then requests get the same 503 as FAIL_CLOSED.

A stand-in for the filter, assembled here byte by byte, is loaded in place of it into envoy/direct-mtls.yaml.
Like the filter it replaces `x-mtls-client-id` (with `stand-in-vm`) on every request it handles and holds a
request with a body until the body is complete; it traps in proxy_on_request_headers when a request has more
than TRAP_ABOVE headers (a hostile client's request). So a request that reached the AS with anything but
`x-mtls-client-id: stand-in-vm` went around a live VM."""
import time

import pytest

from oauth_mtls_harness import client, pki
from oauth_mtls_harness import envoy as envoy_mod
from oauth_mtls_harness.checks import SPOOFED

# ------------------------------------------------------------------ a trapping proxy-wasm module


def _leb(n: int) -> bytes:
    out = bytearray()
    while True:
        b, n = n & 0x7F, n >> 7
        out.append(b | (0x80 if n else 0))
        if not n:
            return bytes(out)


def _vec(items: list[bytes]) -> bytes:
    return _leb(len(items)) + b"".join(items)


def _section(sid: int, payload: bytes) -> bytes:
    return bytes([sid]) + _leb(len(payload)) + payload


def _name(s: str) -> bytes:
    return _leb(len(s)) + s.encode()


def _i32(n: int) -> bytes:
    return b"\x41" + _leb(n)  # i32.const n (n < 2**31, non-negative: LEB of the unsigned value fits here)


I32 = 0x7F
TRAP_ABOVE = 20                   # a request with more headers than this traps the stand-in's VM
ANNOTATION, VM_VALUE = "x-mtls-client-id", "stand-in-vm"
STRINGS_AT = 2048                 # where the data segment puts ANNOTATION + VM_VALUE in the module's memory


def trap_module(trap_above: int = 0) -> bytes:
    """proxy-wasm ABI 0.2.1: vm_start/configure succeed; proxy_on_request_headers executes `unreachable` when
    the request has more than `trap_above` headers (0: every request), otherwise replaces the request's
    ANNOTATION with VM_VALUE and returns StopIteration while a body follows (Continue otherwise);
    proxy_on_request_body returns StopIterationAndBuffer until the end of the body, then Continue."""
    types = [([], []), ([I32], [I32]), ([I32, I32], []), ([I32, I32], [I32]), ([I32, I32, I32], [I32]),
             ([I32] * 5, [I32])]
    type_sec = _vec([b"\x60" + _vec([bytes([p]) for p in ps]) + _vec([bytes([r]) for r in rs]) for ps, rs in types])
    # function 0, imported: proxy_replace_header_map_value(map_type, key_ptr, key_len, value_ptr, value_len)
    import_sec = _vec([_name("env") + _name("proxy_replace_header_map_value") + b"\x00" + _leb(5)])
    key, value = ANNOTATION.encode(), VM_VALUE.encode()
    on_headers = (b"\x20\x01" + _i32(trap_above) + b"\x4b\x04\x40\x00\x0b"  # if num_headers > trap_above: unreachable
                  + _i32(0) + _i32(STRINGS_AT) + _i32(len(key)) + _i32(STRINGS_AT + len(key)) + _i32(len(value))
                  + b"\x10\x00\x1a"                                           # call 0; drop its result
                  + b"\x20\x02\x45\x0b")                                      # return !end_of_stream
    funcs = [  # (export name, type index, body without the locals vector); function i + 1 (after the import)
        ("proxy_abi_version_0_2_1", 0, b"\x0b"),
        ("proxy_on_memory_allocate", 1, _i32(1024) + b"\x0b"),             # a scratch area
        ("proxy_on_context_create", 2, b"\x0b"),
        ("proxy_on_vm_start", 3, _i32(1) + b"\x0b"),                       # 1: ok
        ("proxy_on_configure", 3, _i32(1) + b"\x0b"),
        ("proxy_on_request_headers", 4, on_headers),
        ("proxy_on_request_body", 4, b"\x20\x02\x45\x0b"),                 # return !end_of_stream
    ]
    func_sec = _vec([_leb(t) for _, t, _ in funcs])
    mem_sec = _vec([b"\x00" + _leb(2)])                                   # 2 pages, no maximum
    exports = [_name("memory") + b"\x02\x00"] + [_name(n) + b"\x00" + _leb(i + 1) for i, (n, _, _) in enumerate(funcs)]
    code_sec = _vec([_leb(len(b"\x00" + body)) + b"\x00" + body for _, _, body in funcs])
    data_sec = _vec([b"\x00" + _i32(STRINGS_AT) + b"\x0b" + _vec([bytes([c]) for c in key + value])])
    return (b"\x00asm\x01\x00\x00\x00" + _section(1, type_sec) + _section(2, import_sec) + _section(3, func_sec)
            + _section(5, mem_sec) + _section(7, _vec(exports)) + _section(10, code_sec) + _section(11, data_sec))


def trap_wasm_path(trap_above: int):
    p = pki.build_dir() / "it" / f"trap-above-{trap_above}-headers.wasm"
    p.parent.mkdir(parents=True, exist_ok=True)
    p.write_bytes(trap_module(trap_above))
    return p


def shipped_wasm_config() -> dict:
    (wasm,) = envoy_mod.wasm_filters(envoy_mod.load("direct-mtls.yaml"))
    return wasm["typed_config"]["config"]


def shipped_backoff_seconds() -> float:
    """reload_config.backoff.base_interval of envoy/direct-mtls.yaml (a Duration such as `1s` or `0.5s`)."""
    return float(shipped_wasm_config()["reload_config"]["backoff"]["base_interval"].rstrip("s"))


def start(policy: str, trap_above: int, upstream) -> envoy_mod.Envoy:
    """envoy/direct-mtls.yaml as shipped (its reload_config included), the stand-in module in place of the
    filter, `policy` as its failure_policy."""
    port, admin = envoy_mod.free_port(), envoy_mod.free_port()
    ports = {8443: port, 9901: admin, 9080: upstream.port, 9081: envoy_mod.free_port(), 9082: envoy_mod.free_port()}
    cfg = envoy_mod.render("direct-mtls.yaml", ports)
    (wasm,) = envoy_mod.wasm_filters(cfg)
    conf = wasm["typed_config"]["config"]
    conf["failure_policy"] = policy
    conf["vm_config"]["vm_id"] = f"trap-above-{trap_above}"
    conf["vm_config"]["code"]["local"]["filename"] = str(trap_wasm_path(trap_above))
    return envoy_mod.Envoy(cfg, f"trap-{policy.lower()}-{trap_above}", port, admin).start()


@pytest.fixture(scope="module")
def envoys(upstream):
    """envoys(policy, trap_above=0): the stand-in that traps on every request (0) or on hostile ones only."""
    started = {}

    def get(policy, trap_above=0):
        if (policy, trap_above) not in started:
            started[policy, trap_above] = start(policy, trap_above, upstream)
        return started[policy, trap_above]

    yield get
    for e in started.values():
        e.stop()


def requests(e):
    """Several requests (over new connections, so both workers are hit): token requests with and without a
    certificate, and another path carrying spoofed annotations."""
    out = []
    for _ in range(3):
        out.append(client.token_request(e.port, "dn-client", "demo-client"))
        out.append(client.token_request(e.port, "other-client", "demo-client", headers=SPOOFED))
        out.append(client.curl(e.port, "/userinfo", cert="other-client", headers=SPOOFED))
    return out


# ------------------------------------------------------------------ one HTTP/2 connection per worker

# A hostile request: spoofed annotations and enough extra headers to trap the stand-in.
HOSTILE = SPOOFED + [(f"x-pad-{i}", "1") for i in range(TRAP_ABOVE)]


class H2:
    """One HTTP/2 connection to Envoy, so every stream on it is handled by the same worker (and VM)."""

    def __init__(self, port: int, cert: str | None = "dn-client"):
        import h2.config
        import h2.connection
        self.port = port
        self.sock = client._connect(port, cert, ["h2"])
        self.conn = h2.connection.H2Connection(h2.config.H2Configuration(client_side=True, header_encoding="utf-8"))
        self.conn.initiate_connection()
        self.sock.sendall(self.conn.data_to_send())
        self.streams: dict[int, dict] = {}
        self._pump()  # Envoy's SETTINGS (its flow-control windows)

    def start(self, method: str, path: str, headers: list[tuple[str, str]], body: bytes = b"",
              end_stream: bool = True) -> int:
        sid = self.conn.get_next_available_stream_id()
        test_id = client.new_test_id()
        self.streams[sid] = {"test_id": test_id, "status": 0, "headers": {}, "body": b"", "done": False}
        req = [(":method", method), (":path", path), (":scheme", "https"), (":authority", f"localhost:{self.port}"),
               ("x-test-id", test_id)] + [(k.lower(), v) for k, v in headers]
        self.conn.send_headers(sid, req, end_stream=end_stream and not body)
        self.sock.sendall(self.conn.data_to_send())
        if body:
            self.send(sid, body, end_stream)
        return sid

    def send(self, sid: int, data: bytes, end_stream: bool = True) -> None:
        """DATA frames within the flow-control windows Envoy grants; stops early (without error) once Envoy has
        answered or reset the stream."""
        import h2.exceptions
        while True:
            if self.streams[sid]["done"]:
                return
            size = min(len(data), self.conn.local_flow_control_window(sid), self.conn.max_outbound_frame_size)
            if data and size == 0:
                self._pump()
                continue
            try:
                self.conn.send_data(sid, data[:size], end_stream=end_stream and size == len(data))
                self.sock.sendall(self.conn.data_to_send())
            except (h2.exceptions.StreamClosedError, OSError):
                return
            data = data[size:]
            if not data:
                return

    def response(self, sid: int) -> client.Response:
        s = self.streams[sid]
        while not s["done"]:
            self._pump()
        return client.Response(s["status"], s["headers"], s["body"], s["test_id"], "h2")

    def _pump(self) -> None:
        """Read once from the socket and record what it says about every stream."""
        import h2.events
        data = self.sock.recv(65536)
        if not data:
            raise ConnectionError("Envoy closed the HTTP/2 connection")
        for ev in self.conn.receive_data(data):
            st = self.streams.get(getattr(ev, "stream_id", None))
            if st is None:
                continue
            if isinstance(ev, h2.events.ResponseReceived):
                for k, v in ev.headers:
                    if k == ":status":
                        st["status"] = int(v)
                    else:
                        st["headers"].setdefault(k, []).append(v)
            elif isinstance(ev, h2.events.DataReceived):
                st["body"] += ev.data
                self.conn.acknowledge_received_data(ev.flow_controlled_length, ev.stream_id)
            elif isinstance(ev, (h2.events.StreamEnded, h2.events.StreamReset)):
                st["done"] = True
                if isinstance(ev, h2.events.StreamReset):
                    st["reset"] = ev.error_code
        self.sock.sendall(self.conn.data_to_send())

    def request(self, method: str, path: str, headers: list[tuple[str, str]], body: bytes = b"") -> client.Response:
        return self.response(self.start(method, path, headers, body))

    def close(self) -> None:
        self.sock.close()


def worker_connections(e) -> dict[str, H2]:
    """{worker: an open H2 connection handled by it} for both of Envoy's workers (--concurrency 2), found by
    which worker's listener stat `downstream_cx_active` grew when the connection opened."""
    prefix = f"listener.127.0.0.1_{e.port}."
    out: dict[str, H2] = {}
    for _ in range(40):
        before = e.stats()
        conn = H2(e.port)
        conn.request("GET", "/ready-check", [])
        grew = [k[len(prefix):].split(".")[0] for k, v in e.stats().items()
                if k.startswith(prefix + "worker_") and k.endswith(".downstream_cx_active") and v > before.get(k, 0)]
        if len(grew) == 1 and grew[0] not in out:
            out[grew[0]] = conn
            if len(out) == 2:
                return out
        else:
            conn.close()
    raise AssertionError(f"could not open a connection on each of Envoy's 2 workers (got {sorted(out)})")


def assert_through_a_live_vm(r: client.Response, upstream) -> None:
    """The request reached the AS once, with the annotation the stand-in VM set (the client's spoofed one gone)."""
    assert r.status == 200, r
    (seen,) = upstream.find(r.test_id)
    assert seen.headers.get(ANNOTATION) == [VM_VALUE], f"a request reached the AS around the VM: {seen.headers}"


def assert_refused(r: client.Response, upstream) -> None:
    assert r.status == 503, r
    assert upstream.find(r.test_id) == [], "a request the failed VM did not handle reached the AS"


def until_served(conn: H2, upstream, timeout: float) -> tuple[float, list[int]]:
    """Ordinary requests (spoofed annotations, few headers) on `conn` every 50 ms until one is served:
    (seconds until then, the statuses seen). Each refused one never reached the AS; the served one went
    through a live VM."""
    t0, statuses = time.monotonic(), []
    while True:
        r = conn.request("GET", "/userinfo", SPOOFED)
        statuses.append(r.status)
        if r.status == 200:
            assert_through_a_live_vm(r, upstream)
            return time.monotonic() - t0, statuses
        assert_refused(r, upstream)
        assert time.monotonic() - t0 < timeout, f"not served again within {timeout}s: {statuses}"
        time.sleep(0.05)


# ------------------------------------------------------------------ every request traps


def test_the_trap_module_is_a_valid_proxy_wasm_module_that_traps(envoys):
    e = envoys("FAIL_CLOSED")
    client.curl(e.port, "/userinfo")
    envoy_mod.poll(lambda: "unreachable" in e.log_text(), what="the module's trap in Envoy's log")


def test_fail_closed_a_failed_vm_refuses_every_request_with_503_and_nothing_reaches_the_as(envoys, upstream):
    e = envoys("FAIL_CLOSED")
    for r in requests(e):
        assert r.status == 503, r
        assert upstream.find(r.test_id) == [], "a request passed a failed FAIL_CLOSED VM"
    assert e.alive()


def test_fail_open_a_failed_vm_is_skipped_and_spoofed_annotations_reach_the_as(envoys, upstream):
    """Why the shipped configs do not use FAIL_OPEN: once the VM failed, requests bypass the filter, so a
    client's own x-mtls-client-id reaches the AS, and wrong certificates are not refused."""
    e = envoys("FAIL_OPEN")
    first = client.curl(e.port, "/userinfo")           # the request during which the VM traps
    print(f"FAIL_OPEN: the request that trapped got {first.status}")
    rs = requests(e)
    reached = [r for r in rs if upstream.find(r.test_id)]
    assert reached, f"no request passed the failed FAIL_OPEN VM: {[r.status for r in rs]}"
    spoofed = [upstream.find(r.test_id)[0] for r in reached
               if upstream.find(r.test_id)[0].header("x-mtls-client-id") == "spoofed-client"]
    assert spoofed, "a spoofed x-mtls-client-id was expected to pass a skipped filter"
    wrong_cert = client.token_request(e.port, "other-client", "demo-client")
    assert wrong_cert.status == 200 and upstream.find(wrong_cert.test_id), wrong_cert


def test_fail_reload_a_vm_that_always_traps_never_lets_a_request_through(envoys, upstream):
    e = envoys("FAIL_RELOAD")
    rs = requests(e)
    for r in rs:
        assert upstream.find(r.test_id) == [], "a request passed a failed FAIL_RELOAD VM"
    statuses = [r.status for r in rs]
    print(f"FAIL_RELOAD, a VM that traps on every request: {statuses}")
    assert set(statuses) == {503}, statuses
    deadline = time.monotonic() + 2 * 1.5 * shipped_backoff_seconds() + 1
    while e.stat("wasm.oauth_mtls.vm_reload_success") < 2:     # new VMs came, and trapped in their turn
        assert time.monotonic() < deadline, "Envoy did not reload the failed VMs"
        r = client.curl(e.port, "/userinfo", cert="other-client", headers=SPOOFED)
        assert r.status == 503 and upstream.find(r.test_id) == [], r
        time.sleep(0.1)


# ------------------------------------------------------------------ only a hostile request traps


def test_the_stand_in_replaces_the_annotation_and_traps_only_on_hostile_requests(envoys, upstream):
    e = envoys("FAIL_RELOAD", TRAP_ABOVE)
    conn = H2(e.port)
    assert_through_a_live_vm(conn.request("GET", "/userinfo", SPOOFED), upstream)
    assert_through_a_live_vm(client.token_request(e.port, "dn-client", "demo-client", headers=SPOOFED), upstream)
    assert_refused(conn.request("GET", "/userinfo", HOSTILE), upstream)
    envoy_mod.poll(lambda: "unreachable" in e.log_text(), what="the stand-in's trap in Envoy's log")


def test_fail_closed_one_hostile_request_leaves_its_worker_refusing_every_request(envoys, upstream):
    """Why the shipped configs no longer use FAIL_CLOSED: one trapping request takes its worker's VM down for
    good; the other worker keeps serving."""
    e = envoys("FAIL_CLOSED", TRAP_ABOVE)
    conns = worker_connections(e)
    victim, other = conns.values()
    until_served(victim, upstream, timeout=5)
    assert_refused(victim.request("GET", "/userinfo", HOSTILE), upstream)
    deadline = time.monotonic() + 2 * 1.5 * shipped_backoff_seconds() + 1
    while time.monotonic() < deadline:
        assert_refused(victim.request("GET", "/userinfo", SPOOFED), upstream)
        assert_through_a_live_vm(other.request("GET", "/userinfo", SPOOFED), upstream)
        time.sleep(0.2)
    assert e.stat("wasm.oauth_mtls.vm_reload_success") == 0


def test_fail_reload_after_a_hostile_request_each_worker_serves_again_from_a_new_vm(envoys, upstream):
    """The trapping request gets 503; the next requests on its worker are served by a new VM within the
    backoff (at most 1.5 × base_interval after the worker's previous VM was created); nothing reaches the AS
    around a VM meanwhile."""
    e = envoys("FAIL_RELOAD", TRAP_ABOVE)
    base = shipped_backoff_seconds()
    reloads = e.stat("wasm.oauth_mtls.vm_reload_success")
    for worker, conn in worker_connections(e).items():
        until_served(conn, upstream, timeout=1.5 * base + 1)
        t0 = time.monotonic()
        trap = conn.request("GET", "/token", HOSTILE)
        trapped_in = time.monotonic() - t0
        assert_refused(trap, upstream)
        took, statuses = until_served(conn, upstream, timeout=1.5 * base + 1)
        print(f"FAIL_RELOAD {worker}: the hostile request got {trap.status} {trap.body!r} in"
              f" {trapped_in * 1000:.0f} ms; then {statuses}, served again {took * 1000:.0f} ms after it")
    assert e.stat("wasm.oauth_mtls.vm_reload_success") >= reloads + 2, "each worker's VM was reloaded"


def test_fail_reload_a_vm_that_traps_again_within_the_backoff_refuses_requests_until_it_ends(envoys, upstream):
    """A second trap less than the backoff after a reload: that worker answers 503 (nothing reaches the AS)
    until base_interval to 1.5 × base_interval after the reload, then a new VM serves; the other worker is
    not affected."""
    e = envoys("FAIL_RELOAD", TRAP_ABOVE)
    base = shipped_backoff_seconds()
    victim, other = worker_connections(e).values()
    until_served(victim, upstream, timeout=1.5 * base + 1)
    assert_refused(victim.request("GET", "/token", HOSTILE), upstream)
    until_served(victim, upstream, timeout=1.5 * base + 1)     # the reload: this worker's VM is new now
    reloaded = time.monotonic()
    assert_refused(victim.request("GET", "/token", HOSTILE), upstream)
    assert_through_a_live_vm(other.request("GET", "/userinfo", SPOOFED), upstream)
    took, statuses = until_served(victim, upstream, timeout=1.5 * base + 1)
    since_reload = time.monotonic() - reloaded
    print(f"FAIL_RELOAD, trapped again right after a reload (base_interval {base}s): {len(statuses) - 1} requests"
          f" got 503 for {took * 1000:.0f} ms; served {since_reload * 1000:.0f} ms after the reload")
    assert set(statuses[:-1]) == {503} and len(statuses) > 1, statuses
    assert base - 0.1 <= since_reload <= 1.5 * base + 0.5, since_reload
    assert e.stat("wasm.oauth_mtls.vm_reload_backoff") > 0


def test_fail_reload_a_request_held_by_a_vm_that_then_traps_is_refused_not_passed(envoys, upstream):
    """A token request whose headers the VM holds until its body is complete, when another request on the same
    worker traps that VM in between: the held request is answered 503 and never reaches the AS, although a
    new VM serves the worker's next requests."""
    e = envoys("FAIL_RELOAD", TRAP_ABOVE)
    conn = H2(e.port)
    until_served(conn, upstream, timeout=1.5 * shipped_backoff_seconds() + 1)
    held = conn.start("POST", "/token", [("content-type", client.FORM)] + SPOOFED, b"grant_type=client_credentials",
                      end_stream=False)
    assert_refused(conn.request("GET", "/token", HOSTILE), upstream)
    conn.send(held, b"&client_id=demo-client")
    assert_refused(conn.response(held), upstream)
    until_served(conn, upstream, timeout=1.5 * shipped_backoff_seconds() + 1)
