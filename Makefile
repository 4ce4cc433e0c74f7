# LIMEN — developer entry points. `make run` starts the local stack, `make test` checks everything.

SHELL := /usr/bin/env bash
.SHELLFLAGS := -euo pipefail -c
.DEFAULT_GOAL := help

# Go modules of the workspace (go.work). Adding a module here is one word.
MODULES := libs auth-service gateway vm-service media-service quota-service deployments docs
# Modules with binaries under <module>/cmd/<name>.
SERVICES := auth-service vm-service media-service quota-service gateway

GO ?= go
PKGS := $(foreach m,$(MODULES),./$(m)/...)
GO_TEST_FLAGS ?= -count=1 -timeout 25m
BIN_DIR ?= bin

# go.work is used (workspace mode), where -mod=mod is refused: drop it if the caller exported it.
export GOFLAGS := $(strip $(filter-out -mod=%,$(GOFLAGS)))
export GOWORK :=  # empty: use ./go.work even if the caller set GOWORK=off

.PHONY: help deps run test lint fmt-check sh-check vet arch-check modules-check bench soak build clean fuzz fuzz-smoke

# Go native fuzz targets, as package:FuzzName. `go test -fuzz` fuzzes one target of one package per
# run, so fuzz and fuzz-smoke run them one after the other. Their seed corpora (testdata/fuzz/) are
# also run by every plain `go test`. What fuzzing finds interesting is cached outside the tree (see
# below); only an input that fails is written into it, to the package's testdata/fuzz/<FuzzName>/.
FUZZ_TARGETS := \
	./gateway/internal/domain:FuzzResolve \
	./gateway/internal/ports/http:FuzzProxyPath \
	./auth-service/internal/ports/http:FuzzRegister \
	./auth-service/internal/ports/http:FuzzLogin \
	./auth-service/internal/ports/http:FuzzRefreshLogout \
	./auth-service/internal/ports/http:FuzzAdminUsers \
	./vm-service/internal/service:FuzzCreateVM \
	./vm-service/internal/service:FuzzVMRef \
	./vm-service/internal/service:FuzzBootOrder \
	./media-service/internal/service:FuzzChangeMedia \
	./media-service/internal/service:FuzzISOName
# make fuzz: how long each target is fuzzed (a duration, or Nx for N inputs); FUZZ_FLAGS are test
# binary flags added to each run (e.g. -test.parallel=1). What it finds interesting is kept in
# GOCACHE's fuzz cache (as `go test -fuzz` keeps it) and is where the next make fuzz goes on from.
FUZZTIME ?= 60s
FUZZ_FLAGS ?=
# make test's bounded pass: a number of inputs rather than a time, because a target's workers first
# start their own Postgres/libvirtd (seconds, which a -fuzztime duration counts) and a count does the
# same work on a slow machine as on a fast one. It starts from the seed corpus only (an empty cache
# of its own, removed after), so what make fuzz collected never lengthens it. One worker: the
# machine has two cores.
FUZZ_SMOKE_TIME ?= 100x
FUZZ_SMOKE_FLAGS ?= -test.parallel=1

# $(call fuzz-each,FUZZTIME,FLAGS,CACHE): fuzz every target in turn, stopping at the first that fails.
# CACHE is gocache (GOCACHE's fuzz cache, which `go test -fuzz` uses too) or fresh (an empty one).
# Each package's test binary is built once per call (`go test -c -fuzz`, instrumented for fuzzing;
# into $(BIN_DIR)/fuzz, relinked only when stale) and run in the package's directory as `go test
# -fuzz` runs it: a `go test -fuzz` per target would link its binary again every time (seconds each).
define fuzz-each
	@mkdir -p $(BIN_DIR)/fuzz; built=" "; cache=$$($(GO) env GOCACHE)/fuzz; \
	if [[ $(3) == fresh ]]; then cache=$$(mktemp -d); trap 'rm -rf "$$cache"' EXIT; fi; \
	for target in $(FUZZ_TARGETS); do \
		pkg=$${target%:*}; name=$${target##*:}; bin=$$PWD/$(BIN_DIR)/fuzz/$${pkg//\//_}.test; \
		if [[ $$built != *" $$pkg "* ]]; then $(GO) test -c -fuzz=. -o "$$bin" "$$pkg"; built+="$$pkg "; fi; \
		dir=$$cache/$$($(GO) list "$$pkg"); \
		echo "fuzz $$name ($$pkg) for $(1)"; \
		(cd "$$pkg" && "$$bin" -test.run='^$$' -test.fuzz="^$$name\$$" -test.fuzztime=$(1) -test.fuzzcachedir="$$dir" $(2)); \
	done
endef

help:
	@echo "make run    - start the local stack (Postgres, broker, libvirtd, services) in the foreground"
	@echo "make test   - lint, then go test over every module ($(MODULES))"
	@echo "make lint   - gofmt, go vet, architecture and module-list checks"
	@echo "make fuzz   - every fuzz target for FUZZTIME each (default $(FUZZTIME)); make test runs them briefly (fuzz-smoke)"
	@echo "make build  - build every binary into ./$(BIN_DIR)"
	@echo "make bench  - gateway vs nginx, VM list, media and service benchmarks (deployments/bench/)"
	@echo "make soak   - the stack under load while its parts are killed in turn (SOAK_DURATION, default 10m)"

deps:
	@bash deployments/local/ensure-deps.sh

run: deps
	@bash deployments/local/run.sh

test: deps lint
	$(GO) test $(GO_TEST_FLAGS) $(PKGS)
	@$(MAKE) --no-print-directory fuzz-smoke

# Every fuzz target for a bounded short pass (part of make test).
fuzz-smoke:
	$(call fuzz-each,$(FUZZ_SMOKE_TIME),$(FUZZ_SMOKE_FLAGS),fresh)

# Every fuzz target for FUZZTIME each (make fuzz FUZZTIME=10m).
fuzz:
	$(call fuzz-each,$(FUZZTIME),$(FUZZ_FLAGS),gocache)

lint: modules-check fmt-check sh-check vet arch-check

fmt-check:
	@out=$$(gofmt -l $(MODULES)); \
	if [[ -n "$$out" ]]; then echo "gofmt -l reports unformatted files (run gofmt -w):"; echo "$$out"; exit 1; fi

# Shell scripts: syntax always; shellcheck (warnings and errors) when it is installed.
SH_SCRIPTS = $(wildcard deployments/*/*.sh) .ci/run
sh-check:
	@for f in $(SH_SCRIPTS); do bash -n "$$f"; done
	@if command -v shellcheck >/dev/null; then shellcheck -S warning -x $(SH_SCRIPTS); fi

vet:
	$(GO) vet $(PKGS)

# internal/domain and internal/app must not reach Fiber, pgx, kafka-go or go-libvirt (non-test code).
arch-check:
	$(GO) run ./deployments/archcheck $(PKGS)

# Every module in go.work must be listed in MODULES (or `make test` would silently skip it).
modules-check:
	@missing=(); \
	for dir in $$($(GO) work edit -json | sed -n 's#^[[:space:]]*"DiskPath": "\./\(.*\)".*#\1#p'); do \
		[[ " $(MODULES) " == *" $$dir "* ]] || missing+=("$$dir"); \
	done; \
	if (( $${#missing[@]} )); then echo "go.work uses modules missing from MODULES in the Makefile: $${missing[*]}"; exit 1; fi
	@# The Dockerfiles build each module on its own (GOWORK=off): its go.mod and go.sum must be complete.
	@for dir in $(MODULES); do \
		(cd $$dir && $(GO) mod tidy -diff >/dev/null) || { echo "$$dir: go.mod/go.sum are not tidy (run: cd $$dir && go mod tidy)"; exit 1; }; \
	done
	@# ...and with the versions the workspace, and so every test, uses: an image must run what was tested.
	@for dir in $(MODULES); do \
		modules='{{with .Module}}{{.Path}} {{.Version}}{{end}}'; \
		drift=$$(cd $$dir && diff <($(GO) list -deps -test -f "$$modules" ./... | grep -v '^limen/' | sort -u) \
			<(GOWORK=off $(GO) list -deps -test -f "$$modules" ./... | grep -v '^limen/' | sort -u)) || { \
			echo "$$dir builds other versions on its own than in the workspace (run: go work sync, then go mod tidy in $$dir):"; \
			echo "$$drift"; exit 1; }; \
	done

bench:
	bash deployments/bench/run.sh
	bash deployments/bench/ws.sh
	bash deployments/bench/vms.sh
	bash deployments/bench/media.sh
	bash deployments/bench/quota.sh
	$(GO) test -run '^$$' -bench . -benchtime 10x ./vm-service/internal/service/
	$(GO) test -run '^$$' -bench . ./libs/outbox/

# Bounded: SOAK_DURATION (10m) of load and faults, then a quiet minute and the checks (as root).
soak:
	bash deployments/bench/soak/soak.sh

build:
	@mkdir -p $(BIN_DIR)
	$(GO) build -trimpath -o $(BIN_DIR)/ $(foreach s,$(SERVICES),./$(s)/cmd/...)
	$(GO) build -trimpath -o $(BIN_DIR)/limen-broker ./deployments/broker
	$(GO) build -trimpath -o $(BIN_DIR)/probe ./deployments/probe
	$(GO) build -trimpath -o $(BIN_DIR)/kvmprobe ./deployments/kvmprobe

clean:
	rm -rf $(BIN_DIR)
