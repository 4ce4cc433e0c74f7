# LIMEN — developer entry points. `make run` starts the local stack, `make test` checks everything.

SHELL := /usr/bin/env bash
.SHELLFLAGS := -euo pipefail -c
.DEFAULT_GOAL := help

# Go modules of the workspace (go.work). Adding a module here is one word.
MODULES := libs auth-service gateway vm-service media-service deployments
# Modules with binaries under <module>/cmd/<name>.
SERVICES := auth-service vm-service media-service gateway

GO ?= go
PKGS := $(foreach m,$(MODULES),./$(m)/...)
GO_TEST_FLAGS ?= -count=1 -timeout 25m
BIN_DIR ?= bin

# go.work is used (workspace mode), where -mod=mod is refused: drop it if the caller exported it.
export GOFLAGS := $(strip $(filter-out -mod=%,$(GOFLAGS)))
export GOWORK :=  # empty: use ./go.work even if the caller set GOWORK=off

.PHONY: help deps run test lint fmt-check sh-check vet arch-check modules-check bench build clean

help:
	@echo "make run    - start the local stack (Postgres, broker, libvirtd, services) in the foreground"
	@echo "make test   - lint, then go test over every module ($(MODULES))"
	@echo "make lint   - gofmt, go vet, architecture and module-list checks"
	@echo "make build  - build every binary into ./$(BIN_DIR)"
	@echo "make bench  - gateway vs nginx, VM list, media and service benchmarks (deployments/bench/)"

deps:
	@bash deployments/local/ensure-deps.sh

run: deps
	@bash deployments/local/run.sh

test: deps lint
	$(GO) test $(GO_TEST_FLAGS) $(PKGS)

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
	bash deployments/bench/vms.sh
	bash deployments/bench/media.sh
	$(GO) test -run '^$$' -bench . -benchtime 10x ./vm-service/internal/service/
	$(GO) test -run '^$$' -bench . ./libs/outbox/

build:
	@mkdir -p $(BIN_DIR)
	$(GO) build -trimpath -o $(BIN_DIR)/ $(foreach s,$(SERVICES),./$(s)/cmd/...)
	$(GO) build -trimpath -o $(BIN_DIR)/limen-broker ./deployments/broker
	$(GO) build -trimpath -o $(BIN_DIR)/probe ./deployments/probe
	$(GO) build -trimpath -o $(BIN_DIR)/kvmprobe ./deployments/kvmprobe

clean:
	rm -rf $(BIN_DIR)
