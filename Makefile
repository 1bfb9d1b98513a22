# Every test needs PostgreSQL: TEST_DATABASE_URL, default
# postgres://postgres@127.0.0.1:5432/postgres?sslmode=disable; when nothing
# answers there the test helper starts a throwaway cluster with initdb/pg_ctl.
GO ?= go

.PHONY: test vet build bench fmt

test: vet
	$(GO) test -race -count=1 ./...

vet:
	@test -z "$$(gofmt -l $$(git ls-files '*.go'))" || (echo "gofmt needed:"; gofmt -l $$(git ls-files '*.go'); exit 1)
	$(GO) vet ./...

build:
	$(GO) build -o bin/broker ./cmd/broker
