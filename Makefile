# shardform: the two commands are `make run` and `make test`.
SHELL := /bin/bash
GO ?= go

.PHONY: run test build vet fmt-check generate bench

run:
	$(GO) run ./cmd/shardform serve

# Postgres must answer at SHARDFORM_TEST_DATABASE_URL (default 127.0.0.1:5432).
# scripts/test-env.sh (also used by .ci/run) finds the provider mirror; the
# summary at the end (gotestsum, pinned in go.mod as a tool) lists every
# skipped test with its reason. Fuzz targets run their seed corpora here.
# The test binaries are built first (-run '^$$' runs none of their tests), so
# compiling never competes with the tests for the CPU; the slowest tests are
# listed at the end (their JSON events: $$SHARDFORM_TEST_JSON).
test: fmt-check vet
	source scripts/test-env.sh && $(GO) test -race -count=1 -run '^$$' ./... >/dev/null && \
	json=$${SHARDFORM_TEST_JSON:-$${TMPDIR:-/tmp}/shardform-test.json}; status=0; \
	$(GO) tool gotestsum --format pkgname-and-test-fails --format-hide-empty-pkg --jsonfile "$$json" -- -race -count=1 -timeout 20m ./... || status=$$?; \
	echo "slowest tests:"; $(GO) tool gotestsum tool slowest --jsonfile "$$json" --threshold 30s | head -25; exit $$status

build:
	$(GO) build -o shardform ./cmd/shardform

vet:
	$(GO) vet ./...

fmt-check:
	@out=$$(gofmt -l $$(git ls-files '*.go' 2>/dev/null || find . -name '*.go')); \
	if [ -n "$$out" ]; then echo "gofmt would change:"; echo "$$out"; exit 1; fi

# Regenerate store/*.gen.go after editing store/*.sql or migrations/*.sql
# (go install github.com/sqlc-dev/sqlc/cmd/sqlc@v1.31.1).
generate:
	sqlc generate

bench:
	$(GO) test -run '^$$' -bench . -benchtime 5s ./bench/
