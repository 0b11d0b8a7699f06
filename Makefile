# dialgate — see README.md. Every target that touches the kernel does so
# only inside network namespaces the tests create.
GO          ?= go
STATICCHECK ?= honnef.co/go/tools/cmd/staticcheck@v0.8.2
FUZZTIME    ?= 30s
BENCHTIME   ?= 5x

.PHONY: build test bench fuzz lint demo clean deb test-deb

# Debian package (make deb): version, and the nfpm release run as a Go tool
# (not a module dependency). SOURCE_DATE_EPOCH (last commit) dates the man
# pages and the files in the package, so a rebuild is byte-identical.
VERSION           ?= 0.1.0
NFPM              ?= github.com/goreleaser/nfpm/v2/cmd/nfpm@v2.45.2
SOURCE_DATE_EPOCH ?= $(shell git log -1 --format=%ct 2>/dev/null)

build:
	$(GO) build -o bin/dialgate ./cmd/dialgate

# Needs root (network namespaces, iptables, ipset). Under CI=true a test
# that cannot get root fails instead of skipping.
test:
	$(GO) vet ./...
	$(GO) test -race -count=1 -timeout 15m ./...

# Needs root and knockd (apt-get install knockd), the alternative the
# phone door is measured against. DIALGATE_BENCH_CALLS=100 for a quick run.
bench:
	@command -v knockd >/dev/null || { echo 'make bench needs knockd: apt-get install knockd'; exit 1; }
	$(GO) test -run '^$$' -bench . -benchtime $(BENCHTIME) -timeout 20m ./firewall/ ./store/
	$(GO) test -run '^$$' -bench . -benchtime 1x -timeout 20m ./daemon/
	$(GO) test -run '^$$' -bench . -benchtime 1x -timeout 40m ./cmd/dialgate/

fuzz:
	$(GO) test -run '^$$' -fuzz FuzzParseEntry -fuzztime $(FUZZTIME) ./auth/
	$(GO) test -run '^$$' -fuzz FuzzReadReply -fuzztime $(FUZZTIME) ./agi/
	$(GO) test -run '^$$' -fuzz FuzzReadEnv -fuzztime $(FUZZTIME) ./agi/
	$(GO) test -run '^$$' -fuzz FuzzParsePHC -fuzztime $(FUZZTIME) ./auth/
	$(GO) test -run '^$$' -fuzz FuzzReadMessage -fuzztime $(FUZZTIME) ./ami/
	$(GO) test -run '^$$' -fuzz FuzzParseIPTables -fuzztime $(FUZZTIME) ./firewall/tm3/
	$(GO) test -run '^$$' -fuzz FuzzGenerate -fuzztime $(FUZZTIME) ./dialplan/

lint:
	@test -z "$$(gofmt -l .)" || { gofmt -l .; echo 'gofmt: files above need formatting'; exit 1; }
	$(GO) vet ./...
	$(GO) run $(STATICCHECK) ./...

# A throwaway network-namespace sandbox: the phone door end to end.
demo: build
	scripts/demo.sh

# build/dialgate_$(VERSION)_amd64.deb: a static release binary, man pages,
# completions and the example config from `dialgate gen-docs`, systemd
# units and maintainer scripts from packaging/ (see packaging/README.md).
deb:
	CGO_ENABLED=0 GOOS=linux GOARCH=amd64 $(GO) build -trimpath \
		-ldflags "-s -w -X main.version=$(VERSION)" -o bin/dialgate ./cmd/dialgate
	rm -rf build/man build/completions build/dialgate.toml.example build/dialgate_*.deb
	SOURCE_DATE_EPOCH=$(SOURCE_DATE_EPOCH) bin/dialgate gen-docs \
		--man build/man --completions build/completions \
		--config-example build/dialgate.toml.example
	gzip -9n build/man/*.8 build/man/*.5
	VERSION=$(VERSION) SOURCE_DATE_EPOCH=$(SOURCE_DATE_EPOCH) $(GO) run $(NFPM) \
		pkg --packager deb --config packaging/nfpm.yaml --target build/

# Needs root and a throwaway machine (CI): installs the package with
# apt-get, checks it, purges it. Never starts dialgate or touches the
# firewall.
test-deb:
	VERSION=$(VERSION) bash packaging/test-deb.sh

clean:
	rm -rf bin build
