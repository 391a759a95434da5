# ghconnect developer targets. Go only needs to be on PATH; every other tool
# is built from tools/go.mod into bin/.
SHELL := bash
.SHELLFLAGS := -eu -o pipefail -c
export GOTOOLCHAIN := local
export PATH := $(CURDIR)/bin:$(PATH)

# Every package of the workspace (go.work); vaultdev is its own world.
PKGS := github.com/ghconnect/ghconnect/...
# The workspace's modules (go.work), each of which also builds on its own
# with GOWORK=off; README "Modules" says why each is a module.
MODULES := . dev deploy/k8s
# Modules outside the workspace, built and tested from their own directory.
STANDALONE := dev/vaultdev
# What the services' binaries must never link: the test support's
# dependencies (dev/ is the GitHub emulator and the OIDC provider), and
# deploy/monitoring's (Prometheus's PromQL parser, Grafana's SDK).
TEST_ONLY := github.com/ghconnect/ghconnect/dev/ github.com/getkin/kin-openapi github.com/oauth2-proxy/mockoidc github.com/golang-jwt/jwt \
	github.com/prometheus/prometheus/ github.com/grafana/grafana-foundation-sdk/
TOOLS := bin/buf bin/protoc-gen-go bin/protoc-gen-go-grpc bin/protoc-gen-go-vtproto bin/protoc-gen-grpc-gateway bin/protoc-gen-openapiv2 bin/grpcurl

.PHONY: k8s-test images compose-test ui-deps help tools generate check-generated lint breaking build check-modules run test test-fast test-standalone bench loadtest fuzz clean

help:
	@echo "make run    - build and start the whole system locally (SQLite, vaultdev, GitHub emulator)"
	@echo "make test-fast - the fast tier (go test -short): no Vault, PostgreSQL, processes, browser or containers"
	@echo "make test   - every test (PostgreSQL at GHCONNECT_TEST_POSTGRES, default 127.0.0.1:5432, or one it starts there; =off skips it outside CI)"
	@echo "make images - the container images, built offline (ghconnect/<name>:dev); make compose-test - the compose stack's smoke test"
	@echo "make k8s-test - the production overlay on a real single-node Kubernetes built here (root; the last step of make test)"
	@echo "make tools | generate | check-generated | lint | breaking | build | check-modules | bench | fuzz"

tools: $(TOOLS) bin/ghz bin/golangci-lint bin/promtool

$(TOOLS) &: tools/go.mod tools/go.sum
	cd tools && GOWORK=off go build -o ../bin/ tool

# ghz (the load test's driver) is a module of its own: its last release
# needs a gRPC older than the one buf and the plugins build with.
bin/ghz: tools/ghz/go.mod tools/ghz/go.sum
	cd tools/ghz && GOWORK=off go build -o ../../bin/ tool

# golangci-lint is a module of its own too: in tools/go.mod its requirements
# would raise versions in buf's and the protoc plugins' build lists, and
# those write gen/.
bin/golangci-lint: tools/golangci-lint/go.mod tools/golangci-lint/go.sum
	cd tools/golangci-lint && GOWORK=off go build -o ../../bin/ tool

# promtool (Prometheus's own rule checker and rule unit tests, for
# deploy/monitoring) is a module of its own: Prometheus's service discovery
# brings cloud SDKs no other tool needs.
bin/promtool: tools/promtool/go.mod tools/promtool/go.sum
	cd tools/promtool && GOWORK=off go build -o ../../bin/ tool

generate: tools
	rm -rf gen/ghconnect gen/ghconnect.swagger.json
	buf generate

# Regenerates gen/ and fails if that changed anything: gen/ must be committed
# fresh.
check-generated: generate
	@if [ -n "$$(git status --porcelain -- gen)" ]; then \
		echo "gen/ is stale: run 'make generate' and commit the result"; git status --porcelain -- gen; exit 1; fi

# golangci-lint (.golangci.yml) takes the workspace's modules as ./<module>/...
# patterns in one run. The GOWORK=off modules run from their own
# directories, where it finds the same .golangci.yml.
lint: tools
	buf lint
	@bad=$$(gofmt -l $$(git ls-files '*.go' | grep -v '^gen/')); if [ -n "$$bad" ]; then echo "gofmt needed:"; echo "$$bad"; exit 1; fi
	go vet $(PKGS)
	go vet -tags crashpoints ./services/registry/...
	@for m in $(STANDALONE); do [ ! -f $$m/go.mod ] || (cd $$m && GOWORK=off go vet ./...); done
	golangci-lint run $(patsubst %,./%/...,$(MODULES))
	golangci-lint run --build-tags crashpoints ./services/registry/...
	@for m in $(STANDALONE); do [ ! -f $$m/go.mod ] || (echo "golangci-lint: $$m"; cd $$m && GOWORK=off golangci-lint run ./...); done

# Wire and JSON compatibility of the protos against a git ref (default: the
# previous commit).
BREAKING_BASE ?= HEAD~1
breaking: tools
	@if git cat-file -e $(BREAKING_BASE):buf.yaml 2>/dev/null; then \
		buf breaking --against ".git#ref=$(BREAKING_BASE)"; \
	else echo "breaking: $(BREAKING_BASE) has no buf.yaml; nothing to compare"; fi

# Every service's binaries and tools (services/*/cmd/*): a service added
# later is built without anyone remembering to list it.
build:
	mkdir -p bin
	go build -o bin/ $(patsubst %,./%/...,$(wildcard services/*/cmd))

check-modules:
	@for m in $(MODULES); do echo "GOWORK=off build: $$m"; (cd $$m && GOWORK=off go build ./... && GOWORK=off go vet ./...); done
	@bad=$$(go list -deps $(patsubst %,./%/...,$(wildcard services/*/cmd)) | grep -F $(patsubst %,-e %,$(TEST_ONLY)) || true); \
		if [ -n "$$bad" ]; then echo "the services' binaries link test-only packages:"; echo "$$bad"; exit 1; fi; \
		echo "services' binaries: no test-only package linked"

run:
	./deploy/run-local.sh

# vaultdev is built (or found in ~/.cache) first, on its own timeout: on
# cold caches the build takes minutes, which must not count against the
# timeout of whichever package's test binary needs it first.
# The tests' PostgreSQL is GHCONNECT_TEST_POSTGRES's (default
# 127.0.0.1:5432) when it answers; when nothing does, test-postgres.sh
# starts one there for the run (Debian's, installed when missing) and
# stops it after.
test: ui-deps test-standalone bin/promtool
	go test -count=1 -timeout 30m -run '^TestVaultBinary$$' ./pkg/testenv
	./deploy/postgres/test-postgres.sh go test -race -shuffle=on -count=1 $(PKGS)
	$(MAKE) compose-test
	$(MAKE) k8s-test

# The production overlay on a real single-node Kubernetes 1.34 on this
# machine, started and stopped by deploy/k8stest/run.sh (see its README),
# with e2e TestKubernetes run against it.
k8s-test:
	bash deploy/k8stest/run.sh test

# The fast tier: what needs no Vault, PostgreSQL, built binaries, browser
# or containers (go test -short; testenv.SkipIfShort says what skips).
test-fast:
	go test -short -count=1 $(PKGS)

# Container images, built on this machine with nothing pulled: static
# binaries FROM scratch, PostgreSQL on a debootstrap'd Debian base (made
# once). Needs a running dockerd.
images:
	./deploy/images.sh

# docker-compose.yml for real (demo profile, test ports, its own project):
# installs docker.io/docker-compose/debootstrap when missing, starts dockerd
# when needed (and stops it after), builds the images, runs e2e TestCompose
# against the stack, and removes everything it made.
compose-test:
	./deploy/compose/test.sh

# The admin page's browser test needs Debian's chromium and playwright-core
# (installed from the lock file; no browser download).
ui-deps:
	@command -v chromium >/dev/null || { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null; }
	@[ -d services/gateway/ui/test/node_modules/playwright-core ] || (cd services/gateway/ui/test && npm ci --no-audit --no-fund --silent)

# vaultdev is Vault's own server core: its race build takes ten minutes on
# two cores, so its tests run without the race detector (the services'
# tests, which drive it, run with it).
test-standalone:
	@for m in $(STANDALONE); do [ ! -f $$m/go.mod ] || (cd $$m && GOWORK=off go test -shuffle=on -count=1 ./...); done

# Each benchmark measures its own baseline in the same run and reports
# ratios; one iteration (-benchtime 1x) is a full measurement.
# One package at a time (-p 1): two benchmarks sharing the cores would
# each measure the other.
bench:
	go test -p 1 -run '^$$' -bench . -benchtime 1x $(PKGS)
	cd dev/vaultdev && GOWORK=off go test -run '^$$' -bench . -benchtime 200x .

# Load test of a running broker (started with -loadtest-echo): IssueToken
# against an echo of a reply of the same size on the same server, and their
# ratio. TARGET=host:port CONNECTION=<id>; for
# mutual TLS CA, CERT, KEY (PEM files); TOKEN_FILE for a bearer token; see
# deploy/loadtest/broker.sh for the rest.
loadtest: bin/ghz bin/grpcurl
	@[ -n "$(TARGET)" ] || { echo "usage: make loadtest TARGET=host:port CONNECTION=<connection id> [CA=… CERT=… KEY=… TOKEN_FILE=…]" >&2; exit 2; }
	TARGET=$(TARGET) GHZ=bin/ghz GRPCURL=bin/grpcurl deploy/loadtest/broker.sh

fuzz:
	go test -run '^$$' -fuzz FuzzParseLicense -fuzztime 30s ./services/registry
	go test -run '^$$' -fuzz FuzzRedactMatchesPattern -fuzztime 30s ./pkg/logging

clean:
	rm -rf bin .artifacts
