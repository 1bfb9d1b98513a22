# Every test needs PostgreSQL: TEST_DATABASE_URL, default
# postgres://postgres@127.0.0.1:5432/postgres?sslmode=disable; when nothing
# answers there the test helper starts a throwaway cluster with initdb/pg_ctl.
GO ?= go

.PHONY: test vet build bench bench-upload fmt fuzz

test: vet
	$(GO) test -race -count=1 ./...

vet:
	@test -z "$$(gofmt -l $$(git ls-files '*.go'))" || (echo "gofmt needed:"; gofmt -l $$(git ls-files '*.go'); exit 1)
	$(GO) vet ./...

build:
	$(GO) build -o bin/broker ./cmd/broker

# The benchmark suite (bench/cmd/bench, docs/benchmarks.md): micro-benchmarks,
# then load over loopback against PostgreSQL and the guide's Node server;
# about four minutes. BENCH_DURATION=10s and the other BENCH_* variables
# listed in bench/cmd/bench/main.go tune it.
bench:
	$(GO) build -o bin/bench ./bench/cmd/bench
	GO=$(GO) bin/bench

# Peak RSS of the broker while POST /upload streams 10 MB and 500 MB files
# (docs/benchmarks.md, "Streaming upload memory").
bench-upload:
	$(GO) run ./bench/uploadrss

# Short fuzz runs for CI (the seed corpora already run in `make test`):
# each target FUZZTIME long, one at a time, since go test fuzzes one target
# per package per run. FUZZTIME=1m make fuzz searches longer; a failing
# input is written to the package's testdata/fuzz/<target>/.
FUZZTIME ?= 10s
FUZZ_TARGETS = auth:FuzzVerify auth:FuzzVerifyMutated auth:FuzzBearerHeader \
	signer:FuzzCloudinaryStringToSign signer:FuzzEmulatorAcceptsSignedParams \
	signer:FuzzBrokerSignaturesUpload signer:FuzzUploadcareExpire \
	httpapi:FuzzSaveBodyDecoding metadata:FuzzWebhookVerification metadata:FuzzMatchersAgreeWithRegexps

fuzz:
	@set -e; for t in $(FUZZ_TARGETS); do \
		pkg=$${t%%:*}; name=$${t#*:}; \
		echo "== fuzz $$name ./$$pkg for $(FUZZTIME)"; \
		$(GO) test -run '^$$' -fuzz "^$$name\$$" -fuzztime $(FUZZTIME) ./$$pkg; \
	done
