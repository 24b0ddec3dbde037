# hanode developer entry points. `make run` and `make test` install what they need.
SHELL := /bin/bash
export CARGO_TARGET_DIR ?= $(HOME)/.cache/hanode/target
CARGO ?= cargo
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)
# Debian packages: etcdctl for tests and examples, protoc for etcd's .proto files, libclang for
# RocksDB's bindgen, curl for raw gRPC checks, etcd-server (the etcd binary only: tests start
# their own members; the packaged service, which would hold port 2379, is disabled).
APT_PACKAGES := etcd-client etcd-server protobuf-compiler libclang1-14 libclang-common-14-dev curl
DATA_DIR ?= $(CURDIR)/.hanode/data
ADDRESS ?= 127.0.0.1

.PHONY: deps build run test lint fmt verify clean-data bench bench-api jepsen

deps:
	@command -v $(CARGO) >/dev/null || { echo "cargo not found: install Rust (rustup.rs) first"; exit 1; }
	@missing=""; for p in $(APT_PACKAGES); do dpkg -s $$p >/dev/null 2>&1 || missing="$$missing $$p"; done; \
	if [ -n "$$missing" ]; then \
		echo "installing:$$missing"; \
		$(SUDO) apt-get update -qq && DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -qq $$missing; \
		case "$$missing" in *etcd-server*) $(SUDO) systemctl disable --now etcd >/dev/null 2>&1 || true;; esac; \
	fi

build: deps
	$(CARGO) build -p hanode

# One server with the embedded store. Re-running restarts it from $(DATA_DIR)
# (--init is then ignored, with a log line).
run: build
	$(CARGO_TARGET_DIR)/debug/hanode server --init --node-name $${HANODE_NODE_NAME:-$$(hostname)} \
		--data-dir $(DATA_DIR) --advertise-address $(ADDRESS)

test: build
	$(CARGO) test --workspace

lint: deps
	$(CARGO) fmt --all -- --check
	$(CARGO) clippy --workspace --all-targets -- -D warnings

fmt:
	$(CARGO) fmt --all

verify: lint test

# hanode and etcd 3.4 side by side on loopback (SCALE, ROUNDS, ONLY tune it); see docs/BENCHMARKS.md.
bench: deps
	cmd/hanode-bench/side-by-side.sh

bench-api: deps
	cmd/hanode-bench/api-side-by-side.sh

# Seeded fault runs (stop/restart, pause, partitions, delays, membership) with a
# linearizability check of every history; prints the seed of any failing run.
SEEDS ?= 10
jepsen: deps
	$(CARGO) run --release -p hanode-jepsen -- --seeds $(SEEDS)

clean-data:
	rm -rf $(CURDIR)/.hanode
