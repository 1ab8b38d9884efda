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
test: fmt-check vet
	source scripts/test-env.sh && $(GO) tool gotestsum --format pkgname-and-test-fails --format-hide-empty-pkg -- -race -count=1 -timeout 20m ./...

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
