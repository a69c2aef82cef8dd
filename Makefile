# Thin targets; the logic lives in Go and in .ci/run. Release builds are static
# (CGO_ENABLED=0): with cgo the net package links libc and start-up, paid by every
# secrets call, grows (DESIGN.md section 9). Tests use cgo for the race detector.

VERSION ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)
LDFLAGS := -s -w -X main.version=$(VERSION)
BUILD   := CGO_ENABLED=0 go build -trimpath -ldflags '$(LDFLAGS)'

# A pipe into grep or tee must not hide a failing test from CI.
SHELL := /bin/bash
.SHELLFLAGS := -o pipefail -c

.PHONY: build test stress cover lint cross bench fuzz install

build:
	$(BUILD) -o secrets .

test: node_modules
	go vet ./...
	go test -race ./...
	npm test

stress:
	go test -tags stress -count=1 -timeout 30m -run Stress -v . | grep -E '^(=== RUN|--- |PASS|FAIL|ok)|stress_test'

node_modules: package-lock.json
	npm ci --no-audit --no-fund

cover:
	go test -coverprofile=cover.out ./...
	go tool cover -func=cover.out

lint:
	test -z "$$(gofmt -l . | grep -v '^.scratch/')"
	go vet ./...

# macOS, where most agent users are: every package builds, vets and links its tests
# for both architectures. Nothing runs there in CI; the README says what was run where.
cross:
	for arch in amd64 arm64; do \
		GOOS=darwin GOARCH=$$arch CGO_ENABLED=0 go build -o /dev/null ./... && \
		GOOS=darwin GOARCH=$$arch go vet ./... && \
		GOOS=darwin GOARCH=$$arch go test -c -o "$$(mktemp -d)/" ./... >/dev/null || exit 1; \
	done

bench:
	go test -run '^$$' -bench '^Benchmark(LeaseVsAge|LeaseVsVersion|LeaseWithActiveLeases|AuditTail|Startup|StartupVsBeforeMCP|ExecVsTrue|ExecVsLease|LeaseWithPolicy|LeaseManySecrets|Redact|StateCodec1000|StateCrypto1000|GuardedLease|GuardedExec|ExecInjectVsSecret|StartupVsBeforeInject|ProxySmall|ProxyLarge)$$' -benchtime 200x -timeout 60m ./... | tee bench.out
	go test -run '^$$' -bench '^Benchmark(ConcurrentLeases|VerifyAndMemory|LeaseTail)$$' -benchtime 1x -timeout 60m . | tee -a bench.out

# Fuzz budgets are execution counts, not durations: with -fuzztime 30s Go 1.26's
# coordinator can fail a target with a bare "context deadline exceeded" when its
# deadline races a worker's last input (go.dev/issue/75804, fixed in Go 1.27).
# A count has no deadline to race. Each count is sized to take about 28 s in a
# fresh-clone CI run here (issue 6 asks 30 s a target); targets that run bash or
# write files are slow per input, hence their small numbers.
fuzz:
	go test -run '^$$' -fuzz '^FuzzParse$$' -fuzztime 680000x ./internal/duration
	go test -run '^$$' -fuzz '^FuzzLine$$' -fuzztime 10000x ./audit
	go test -run '^$$' -fuzz '^FuzzStateCodec$$' -fuzztime 290000x ./vault
	go test -run '^$$' -fuzz '^FuzzReplay$$' -fuzztime 300000x ./vault
	go test -run '^$$' -fuzz '^FuzzEncodeEntry$$' -fuzztime 200000x ./audit
	go test -run '^$$' -fuzz '^FuzzParseX25519$$' -fuzztime 200000x ./store
	go test -run '^$$' -fuzz '^FuzzParseConfig$$' -fuzztime 560000x ./store
	go test -run '^$$' -fuzz '^FuzzParseSecrets$$' -fuzztime 450000x ./store
	go test -run '^$$' -fuzz '^FuzzParseProject$$' -fuzztime 490000x ./envfile
	go test -run '^$$' -fuzz '^FuzzQuote$$' -fuzztime 10500x ./envfile
	go test -run '^$$' -fuzz '^FuzzRedact$$' -fuzztime 230000x ./redact

install:
	CGO_ENABLED=0 go install -trimpath -ldflags '$(LDFLAGS)' .
