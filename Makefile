# dialgate — see README.md. Every target that touches the kernel does so
# only inside network namespaces the tests create.
GO          ?= go
STATICCHECK ?= honnef.co/go/tools/cmd/staticcheck@v0.8.2
FUZZTIME    ?= 30s
BENCHTIME   ?= 5x

.PHONY: build test bench fuzz lint demo demo-clean clean deb test-deb rpm test-rpm install uninstall test-install \
	pkg-files release test-release lint-deb print-version

# Versions come from git (scripts/version.sh, README "Versions"):
# GIT_VERSION is `git describe --tags` without the v (0.2.0, 0.2.0-rc1,
# 0.2.0-3-gabc123def456; 0.0.0-<n>-g<commit> before the first tag; "dev
# (outside git)"), the one `dialgate --version` prints; VERSION is its
# Debian/RPM spelling (0.2.0~rc1, 0.2.0+3.gabc123def456). Outside git,
# give GIT_VERSION=1.2.3 for the packages. SOURCE_DATE_EPOCH (the last
# commit's time) is the build date: it dates the man pages, the
# changelog's top entry and the files in the packages, so a rebuild is
# byte-identical.
ifeq ($(origin GIT_VERSION),undefined)
GIT_VERSION       := $(shell sh scripts/version.sh)
endif
ifeq ($(origin VERSION),undefined)
VERSION           := $(shell sh scripts/version.sh --package '$(GIT_VERSION)' 2>/dev/null)
endif
ifeq ($(origin COMMIT),undefined)
COMMIT            := $(shell git rev-parse HEAD 2>/dev/null)
endif
ifeq ($(origin SOURCE_DATE_EPOCH),undefined)
SOURCE_DATE_EPOCH := $(shell git log -1 --format=%ct 2>/dev/null)
endif
BUILD_DATE        := $(if $(SOURCE_DATE_EPOCH),$(shell date -u -d @$(SOURCE_DATE_EPOCH) +%Y-%m-%dT%H:%M:%SZ))
# The nfpm release run as a Go tool (not a module dependency).
NFPM              ?= github.com/goreleaser/nfpm/v2/cmd/nfpm@v2.45.2
# The architecture make deb and make rpm package (make release does all
# of RELEASE_ARCHES).
ARCH              ?= amd64
RELEASE_ARCHES    ?= amd64 arm64
RELEASE_DIR       ?= build/release

VERSION_LDFLAGS = -X 'main.version=$(GIT_VERSION)' -X 'main.commit=$(COMMIT)' -X 'main.date=$(BUILD_DATE)'

build:
	$(GO) build -ldflags "$(VERSION_LDFLAGS)" -o bin/dialgate ./cmd/dialgate

# The release binary of the packages, make release and make install:
# static, no cgo, no build paths or build ID, so the same commit gives
# the same bytes. $(call release_build,ARCH,OUTPUT)
release_build = CGO_ENABLED=0 GOOS=linux GOARCH=$(1) $(GO) build -trimpath -buildvcs=false \
	-ldflags "-s -w -buildid= $(VERSION_LDFLAGS)" -o $(2) ./cmd/dialgate
RELEASE_BUILD = $(call release_build,$(ARCH),bin/dialgate)

# From-source install (see README, Install). DESTDIR stages it elsewhere.
# Installs files only: starts, enables and loads nothing.
PREFIX         ?= /usr/local
SYSTEMDUNITDIR ?= /etc/systemd/system
BINDIR         ?= $(PREFIX)/sbin
MANDIR         ?= $(PREFIX)/share/man
DOCDIR         ?= $(PREFIX)/share/doc/dialgate
DATADIR        ?= $(PREFIX)/share
UNITS          := dialgate.service dialgate-restore.service

install:
	$(RELEASE_BUILD)
	rm -rf build/install
	SOURCE_DATE_EPOCH=$(SOURCE_DATE_EPOCH) bin/dialgate gen-docs \
		--man build/install/man --completions build/install/completions \
		--config-example build/install/dialgate.toml.example
	gzip -9n build/install/man/*.8 build/install/man/*.5
	for u in $(UNITS); do \
		sed -e 's|/usr/sbin/dialgate|$(BINDIR)/dialgate|g' \
			-e 's|/usr/share/doc/dialgate/README.Debian|$(DOCDIR)/README.packaging.md|g' \
			packaging/$$u >build/install/$$u || exit 1; \
	done
	install -D -m 0755 bin/dialgate $(DESTDIR)$(BINDIR)/dialgate
	install -d -m 0755 $(DESTDIR)$(SYSTEMDUNITDIR) $(DESTDIR)$(MANDIR)/man8 $(DESTDIR)$(MANDIR)/man5 $(DESTDIR)$(DOCDIR)
	install -m 0644 $(addprefix build/install/,$(UNITS)) $(DESTDIR)$(SYSTEMDUNITDIR)/
	install -m 0644 build/install/man/*.8.gz $(DESTDIR)$(MANDIR)/man8/
	install -m 0644 build/install/man/*.5.gz $(DESTDIR)$(MANDIR)/man5/
	install -D -m 0644 build/install/completions/dialgate $(DESTDIR)$(DATADIR)/bash-completion/completions/dialgate
	install -D -m 0644 build/install/completions/_dialgate $(DESTDIR)$(DATADIR)/zsh/site-functions/_dialgate
	install -D -m 0644 build/install/completions/dialgate.fish $(DESTDIR)$(DATADIR)/fish/vendor_completions.d/dialgate.fish
	install -m 0644 README.md build/install/dialgate.toml.example $(DESTDIR)$(DOCDIR)/
	install -m 0644 packaging/README.md $(DESTDIR)$(DOCDIR)/README.packaging.md
	@echo
	@echo 'Installed $(BINDIR)/dialgate; nothing was enabled or started. Next, as root, over SSH'
	@echo 'from the address you manage this server from (see README, SSH lockout):'
	@echo '    systemctl daemon-reload'
	@echo '    dialgate init'
	@echo '    systemctl enable --now dialgate-restore dialgate'

# Removes what install put there; never the config, the database or the
# firewall. Refuses while the units are enabled or running.
uninstall:
	@if [ -z "$(DESTDIR)" ] && command -v systemctl >/dev/null && \
		{ systemctl is-enabled --quiet $(UNITS) 2>/dev/null || systemctl is-active --quiet $(UNITS) 2>/dev/null; }; then \
		echo 'make uninstall: dialgate units are enabled or running; first:'; \
		echo '    systemctl disable --now dialgate dialgate-restore'; \
		echo '(the firewall stays in the kernel; dialgate remove --yes takes it out)'; exit 1; \
	fi
	rm -f $(DESTDIR)$(BINDIR)/dialgate $(addprefix $(DESTDIR)$(SYSTEMDUNITDIR)/,$(UNITS))
	rm -f $(DESTDIR)$(MANDIR)/man8/dialgate.8.gz $(DESTDIR)$(MANDIR)/man8/dialgate-*.8.gz $(DESTDIR)$(MANDIR)/man5/dialgate.toml.5.gz
	rm -f $(DESTDIR)$(DATADIR)/bash-completion/completions/dialgate $(DESTDIR)$(DATADIR)/zsh/site-functions/_dialgate $(DESTDIR)$(DATADIR)/fish/vendor_completions.d/dialgate.fish
	rm -rf $(DESTDIR)$(DOCDIR)
	@echo 'Left in place: /etc/dialgate (config), /var/lib/dialgate (database), the firewall in the kernel.'

# make install and uninstall into a temporary DESTDIR, checked.
test-install:
	bash packaging/test-install.sh

# Needs root (network namespaces, iptables, ipset). Under CI=true a test
# that cannot get root fails instead of skipping. Every package runs under
# the race detector except the end-to-end tests of cmd/dialgate: they run
# dialgate as separate processes (hundreds of them), which the detector
# slows fourfold, while the concurrency they drive (the daemon, the door,
# the watchdog, the protocol servers) is raced in its own packages' tests.
test:
	$(GO) vet ./...
	$(GO) test -race -count=1 -timeout 15m $$($(GO) list ./... | grep -v '/cmd/dialgate$$')
	$(GO) test -count=1 -timeout 15m ./cmd/dialgate/

# Needs root and knockd (apt-get install knockd), the alternative the
# phone door is measured against. DIALGATE_BENCH_CALLS=100 for a quick run
# (DIALGATE_BENCH_CHANGES=20 and DIALGATE_BENCH_ENTRIES=500 shrink the
# shared-store benchmarks).
bench:
	@command -v knockd >/dev/null || { echo 'make bench needs knockd: apt-get install knockd'; exit 1; }
	$(GO) test -run '^$$' -bench . -benchtime $(BENCHTIME) -timeout 20m ./firewall/ ./store/
	$(GO) test -run '^$$' -bench . -benchtime 1x -timeout 20m ./daemon/ ./etcdstore/
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
# KEEP=1 leaves it running to explore; make demo-clean removes it.
demo: build
	KEEP=$(KEEP) scripts/demo.sh

demo-clean:
	scripts/demo.sh clean

# What the packages carry besides the binary, in build/: man pages,
# completions and the example config from `dialgate gen-docs`, the
# copyright file (every bundled Go module's licence, from the module
# cache) and the Debian changelog (from CHANGELOG.md).
pkg-files:
	@test -n "$(VERSION)" || { echo 'no package version (outside git?): give GIT_VERSION=1.2.3'; exit 1; }
	@test -n "$(SOURCE_DATE_EPOCH)" || { echo 'no SOURCE_DATE_EPOCH (outside git?): give SOURCE_DATE_EPOCH=<unix time>'; exit 1; }
	$(call release_build,$(shell $(GO) env GOHOSTARCH),build/gen-docs/dialgate)
	rm -rf build/man build/completions build/dialgate.toml.example build/copyright build/changelog build/changelog.gz
	SOURCE_DATE_EPOCH=$(SOURCE_DATE_EPOCH) build/gen-docs/dialgate gen-docs \
		--man build/man --completions build/completions \
		--config-example build/dialgate.toml.example
	gzip -9n build/man/*.8 build/man/*.5
	$(GO) run ./scripts/gencopyright >build/copyright
	$(GO) run ./scripts/genchangelog -version '$(VERSION)' -git-version '$(GIT_VERSION)' \
		-date $(SOURCE_DATE_EPOCH) <CHANGELOG.md >build/changelog
	gzip -9n build/changelog

# $(call nfpm,PACKAGER,ARCH,TARGET_DIR): packages build/bin/linux_ARCH/dialgate
# with packaging/nfpm.yaml (DIALGATE_ARCH, not GOARCH: go run builds nfpm
# for this machine).
nfpm = VERSION='$(VERSION)' DIALGATE_ARCH=$(2) SOURCE_DATE_EPOCH=$(SOURCE_DATE_EPOCH) $(GO) run $(NFPM) \
	pkg --packager $(1) --config packaging/nfpm.yaml --target $(3)/

# build/dialgate_$(VERSION)_$(ARCH).deb: the static binary, the files of
# pkg-files, systemd units and maintainer scripts from packaging/ (see
# packaging/README.md).
deb: pkg-files
	$(call release_build,$(ARCH),build/bin/linux_$(ARCH)/dialgate)
	rm -f build/dialgate_*.deb
	$(call nfpm,deb,$(ARCH),build)

# build/dialgate-$(VERSION)-1.<arch>.rpm: the same contents from the same
# nfpm.yaml; RPM-specific scriptlets in packaging/scripts/rpm/.
rpm: pkg-files
	$(call release_build,$(ARCH),build/bin/linux_$(ARCH)/dialgate)
	rm -f build/dialgate-*.rpm
	$(call nfpm,rpm,$(ARCH),build)

# $(RELEASE_DIR): dialgate-$(VERSION)-linux-<arch> binaries, a .deb and an
# .rpm per architecture of RELEASE_ARCHES, and SHA256SUMS of them all.
# Reproducible: make test-release builds it twice and compares.
release: pkg-files
	rm -rf $(RELEASE_DIR)
	mkdir -p $(RELEASE_DIR)
	for a in $(RELEASE_ARCHES); do \
		$(call release_build,$$a,build/bin/linux_$$a/dialgate) || exit 1; \
		cp build/bin/linux_$$a/dialgate $(RELEASE_DIR)/dialgate-$(VERSION)-linux-$$a || exit 1; \
		$(call nfpm,deb,$$a,$(RELEASE_DIR)) || exit 1; \
		$(call nfpm,rpm,$$a,$(RELEASE_DIR)) || exit 1; \
	done
	cd $(RELEASE_DIR) && sha256sum $$(ls | grep -v '^SHA256SUMS$$') >SHA256SUMS
	@cat $(RELEASE_DIR)/SHA256SUMS

# make release twice, in two fresh clones of HEAD at different paths,
# and the two SHA256SUMS compared byte for byte.
test-release:
	bash packaging/test-release.sh

# lintian on the .deb (apt-get install lintian): no errors; the warnings
# it still gives are explained in packaging/README.md.
lint-deb: deb
	lintian --fail-on error --info --display-info build/dialgate_$(VERSION)_$(ARCH).deb

# The versions this tree builds: what --version prints, the packages'.
print-version:
	@echo "GIT_VERSION='$(GIT_VERSION)'"
	@echo "VERSION='$(VERSION)'"
	@echo "COMMIT='$(COMMIT)'"

# Needs root and rpm(8) (apt-get install rpm): builds the RPM and the .deb,
# inspects the RPM, runs its scriptlets against a stub systemctl in a
# private mount namespace and installs it into a throwaway root with
# rpm --root. Nothing on this machine changes outside build/.
test-rpm:
	bash packaging/test-rpm.sh

# Needs root and a throwaway machine (CI): installs the package with
# apt-get, checks it, purges it. Never starts dialgate or touches the
# firewall.
test-deb:
	bash packaging/test-deb.sh

clean:
	rm -rf bin build
