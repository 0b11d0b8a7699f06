# dialgate — see README.md. Every target that touches the kernel does so
# only inside network namespaces the tests create.
GO          ?= go
STATICCHECK ?= honnef.co/go/tools/cmd/staticcheck@v0.8.2
FUZZTIME    ?= 30s
BENCHTIME   ?= 5x

.PHONY: build test bench fuzz lint demo clean

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
	$(GO) test -run '^$$' -bench . -benchtime $(BENCHTIME) -timeout 20m ./firewall/
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

clean:
	rm -rf bin
