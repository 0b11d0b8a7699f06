#!/usr/bin/env bash
# Build the dialgate .deb, install it on THIS machine with apt-get, check
# what it put where and that it enabled and started nothing, then purge it
# and check that nothing of it is left.
#
# For a throwaway machine (CI) or a dev box without dialgate: it needs
# root, and refuses to run where dialgate is installed or set up
# (/var/lib/dialgate, /etc/dialgate), since the purge at the end would
# delete that state. It never runs `dialgate init`, `serve` or `restore`,
# and never reads or changes the firewall.
#
#   bash packaging/test-deb.sh          # or: make test-deb
#   KEEP=1 ...                          # on failure, leave the package installed
set -euo pipefail
cd "$(dirname "$0")/.."

export DEBIAN_FRONTEND=noninteractive

step() { printf '\n== %s\n' "$*"; }
ok() { printf '   ok: %s\n' "$*"; }
fail() {
	printf '\ntest-deb: FAIL: %s\n' "$*" >&2
	exit 1
}

[ "$(id -u)" = 0 ] || fail "needs root (it installs and purges a package)"
{ command -v apt-get && command -v dpkg; } >/dev/null || fail "needs a Debian-like system (apt-get, dpkg)"

# The versions (what make builds, git describe, the binary, the package).
. packaging/versions.sh

step "precondition: no dialgate on this machine"
st=$(dpkg-query -W -f='${db:Status-Abbrev}' dialgate 2>/dev/null || true)
if grep -q '^[ihr]' <<<"$st"; then
	fail "the dialgate package is already on this machine (dpkg -l dialgate); this test would purge it"
fi
for p in /var/lib/dialgate /etc/dialgate; do
	[ ! -e "$p" ] || fail "$p exists: dialgate is set up here and the purge would delete it; run this on a throwaway machine"
done
ok "no dialgate package, no /var/lib/dialgate, no /etc/dialgate"
# /run/dialgate may hold namespace lock files from earlier test runs (a
# daemon run with a cleared environment cannot be pointed elsewhere); what
# counts is that the install does not make it.
run_before=0
[ -e /run/dialgate ] && run_before=1

installed=0
cleanup() {
	rc=$?
	if [ "$rc" != 0 ] && [ "$installed" = 1 ] && [ "${KEEP:-}" != 1 ]; then
		echo "test-deb: purging the package after the failure (KEEP=1 keeps it)" >&2
		apt-get purge -y -qq dialgate >/dev/null 2>&1 || true
	fi
}
trap cleanup EXIT

step "make deb VERSION=$VERSION"
rm -f build/dialgate_*.deb
make deb
deb=build/dialgate_${VERSION}_amd64.deb
[ -f "$deb" ] || fail "make deb did not produce $deb (build/: $(find build -maxdepth 1 -printf '%f ' 2>/dev/null))"
ok "$deb ($(stat -c %s "$deb") bytes)"

step "package metadata"
[ "$(dpkg-deb -f "$deb" Package)" = dialgate ] || fail "Package is not dialgate"
[ "$(dpkg-deb -f "$deb" Version)" = "$VERSION" ] || fail "Version is '$(dpkg-deb -f "$deb" Version)', want $VERSION (git: $GIT_VERSION)"
[ "$(dpkg-deb -f "$deb" Architecture)" = amd64 ] || fail "Architecture is not amd64"
depends=$(dpkg-deb -f "$deb" Depends)
for d in iptables ipset iproute2; do
	grep -Eq "(^|, )$d( |,|$)" <<<"$depends" || fail "Depends ($depends) lacks $d"
done
ok "dialgate $VERSION amd64 (git $GIT_VERSION), Depends: $depends"
recommends=$(dpkg-deb -f "$deb" Recommends)
grep -Eq "(^|, )bash-completion( |,|$)" <<<"$recommends" || fail "Recommends ($recommends) lacks bash-completion"
ok "Recommends: $recommends"
contents=$(dpkg-deb -c "$deb")
grep -q '/etc/dialgate/dialgate.toml' <<<"$contents" && fail "the package ships /etc/dialgate/dialgate.toml; dialgate init writes it"
grep -q 'gen-docs' <<<"$contents" && fail "the package ships a man page for the hidden gen-docs command"
ok "no config file in /etc, no gen-docs page"

step "apt-get install ./$deb"
deps=$(dpkg-query -W -f='${db:Status-Abbrev}\n' iptables ipset iproute2 bash-completion 2>/dev/null || true)
if [ "$(grep -c '^ii' <<<"$deps")" != 4 ]; then
	apt-get update -qq # the dependencies (and recommends) have to come from the archive
fi
installed=1
out=$(apt-get install -y "./$deb" 2>&1) || {
	printf '%s\n' "$out"
	fail "apt-get install failed"
}
printf '%s\n' "$out" | sed -n '/^dialgate:/,$p' | grep -v '^(Reading database' || true
grep -q 'dialgate init' <<<"$out" || fail "postinst did not tell the administrator to run dialgate init"
[ "$(dpkg-query -W -f='${db:Status-Abbrev}' dialgate)" = "ii " ] || fail "dpkg does not list dialgate as installed"
dv=$(dpkg-query -W -f='${Version}' dialgate)
[ "$dv" = "$VERSION" ] || fail "dpkg -s dialgate: Version $dv, want $VERSION"
ok "dpkg -s dialgate: Version $dv"
ok "installed"

step "binary"
[ "$(command -v dialgate)" = /usr/sbin/dialgate ] || fail "dialgate on PATH is '$(command -v dialgate || true)', want /usr/sbin/dialgate"
[ "$(stat -c %a /usr/sbin/dialgate)" = 755 ] || fail "/usr/sbin/dialgate mode $(stat -c %a /usr/sbin/dialgate), want 755"
check_binary /usr/sbin/dialgate

step "man pages"
for page in dialgate dialgate-init dialgate-serve dialgate-remove dialgate-status dialgate-allow; do
	f=/usr/share/man/man8/$page.8.gz
	[ -s "$f" ] || fail "$f missing"
	gzip -t "$f" || fail "$f is not valid gzip"
done
page=$(zcat /usr/share/man/man8/dialgate.8.gz)
grep -q '^\.TH "DIALGATE" "8"' <<<"$page" || fail "dialgate.8 has no section-8 .TH header naming DIALGATE"
grep -q 'dialgate init' <<<"$page" || fail "dialgate.8 does not describe the commands"
for sec in 'SSH LOCKOUT' FILES 'EXIT STATUS' EXAMPLES; do
	grep -qx "\.SH $sec" <<<"$page" || fail "dialgate.8 has no $sec section"
done
f=/usr/share/man/man5/dialgate.toml.5.gz
{ [ -s "$f" ] && gzip -t "$f"; } || fail "$f missing or not valid gzip"
grep -q '^db = "/var/lib/dialgate/dialgate.db"$' <(zcat "$f") || fail "dialgate.toml.5 does not show the default config"
if command -v man >/dev/null; then
	w=$(man -w dialgate 2>/dev/null) || fail "man -w dialgate found nothing"
	[ "$w" = /usr/share/man/man8/dialgate.8.gz ] || fail "man -w dialgate: $w"
	ok "man -w dialgate: $w"
	w=$(man -w dialgate.toml 2>/dev/null) || fail "man -w dialgate.toml found nothing"
	[ "$w" = /usr/share/man/man5/dialgate.toml.5.gz ] || fail "man -w dialgate.toml: $w"
	ok "man -w dialgate.toml: $w"
else
	ok "man(1) not installed here; the page files exist"
fi
ok "$(find /usr/share/man/man8 -name 'dialgate*.8.gz' | wc -l) pages in /usr/share/man/man8"

step "shell completions"
for f in /usr/share/bash-completion/completions/dialgate \
	/usr/share/zsh/vendor-completions/_dialgate \
	/usr/share/fish/vendor_completions.d/dialgate.fish; do
	[ -s "$f" ] || fail "$f missing or empty"
	ok "$f"
done
bash -n /usr/share/bash-completion/completions/dialgate || fail "bash completion does not parse"
grep -q '__start_dialgate' /usr/share/bash-completion/completions/dialgate || fail "bash completion does not define __start_dialgate"
[ "$(head -1 /usr/share/zsh/vendor-completions/_dialgate)" = '#compdef dialgate' ] || fail "zsh completion lacks #compdef dialgate"
grep -q 'complete -c dialgate' /usr/share/fish/vendor_completions.d/dialgate.fish || fail "fish completion lacks complete -c dialgate"
ok "bash parses; zsh #compdef; fish complete -c"
# The scripts call back into the binary (cobra's __complete); hidden
# commands are not offered.
re=$(dialgate __complete re 2>/dev/null)
grep -q '^restore' <<<"$re" || fail "dialgate __complete re does not offer restore: $re"
gen=$(dialgate __complete gen 2>/dev/null)
grep -q '^gen-docs' <<<"$gen" && fail "dialgate __complete offers the hidden gen-docs"
ok "dialgate __complete re: $(grep -v '^:' <<<"$re" | cut -f1 | tr '\n' ' ')"

step "docs and directories"
for f in /usr/share/doc/dialgate/README.md /usr/share/doc/dialgate/README.Debian /usr/share/doc/dialgate/dialgate.toml.example; do
	[ -s "$f" ] || fail "$f missing"
done
cmp -s /usr/share/doc/dialgate/dialgate.toml.example build/dialgate.toml.example || fail "installed example config differs from gen-docs output"
grep -q '^db = "/var/lib/dialgate/dialgate.db"' /usr/share/doc/dialgate/dialgate.toml.example || fail "example config lacks the default db path"
{ [ -d /etc/dialgate ] && [ "$(stat -c %a /etc/dialgate)" = 755 ]; } || fail "/etc/dialgate missing or not 0755"
[ -z "$(ls -A /etc/dialgate)" ] || fail "/etc/dialgate is not empty after install: $(ls -A /etc/dialgate)"
ok "README.md, README.Debian, dialgate.toml.example; empty /etc/dialgate 0755"
c=/usr/share/doc/dialgate/copyright
head -1 "$c" | grep -q '^Format: https://www.debian.org/doc/packaging-manuals/copyright-format/1.0/$' || fail "$c is not DEP-5"
grep -qx 'License: GPL-3+' "$c" || fail "$c does not name GPL-3+"
grep -qx 'Files: vendor/github.com/spf13/cobra/\*' "$c" || fail "$c does not list the bundled modules"
top=$(zcat /usr/share/doc/dialgate/changelog.gz | head -1)
[ "$top" = "dialgate ($VERSION) unstable; urgency=medium" ] || fail "changelog.gz starts '$top', want dialgate ($VERSION)"
ok "copyright (DEP-5, GPL-3+, $(grep -c '^Files: vendor/' "$c") modules), changelog.gz: $top"

step "systemd units"
for u in dialgate.service dialgate-restore.service; do
	[ -f /lib/systemd/system/$u ] || fail "/lib/systemd/system/$u missing"
	cmp -s /lib/systemd/system/$u packaging/$u || fail "/lib/systemd/system/$u differs from packaging/$u"
done
grep -qx 'ExecStart=/usr/sbin/dialgate serve' /lib/systemd/system/dialgate.service || fail "dialgate.service ExecStart"
grep -qx 'ExecStart=/usr/sbin/dialgate restore' /lib/systemd/system/dialgate-restore.service || fail "dialgate-restore.service ExecStart"
for u in dialgate.service dialgate-restore.service; do
	grep -qx 'ConditionPathExists=/var/lib/dialgate/dialgate.db' /lib/systemd/system/$u || fail "$u lacks ConditionPathExists on the database"
done
ok "both units in /lib/systemd/system, conditioned on the database"
if command -v systemd-analyze >/dev/null; then
	# --man=no: Documentation=man: pages are checked above; verify would
	# look them up with man(1), which a minimal machine may lack.
	if ! v=$(SYSTEMD_LOG_LEVEL=notice systemd-analyze verify --man=no \
		/lib/systemd/system/dialgate.service /lib/systemd/system/dialgate-restore.service 2>&1); then
		printf '%s\n' "$v"
		fail "systemd-analyze verify failed"
	fi
	# verify exits 0 on some warnings; any line naming our units is one.
	if grep -E 'dialgate(-restore)?\.service' <<<"$v"; then
		fail "systemd-analyze verify warned about the units (above)"
	fi
	ok "systemd-analyze verify: clean"
else
	echo "   skip: systemd-analyze not installed; unit files not verified"
fi

step "postinst enabled and started nothing"
links=$(find /etc/systemd/system -name 'dialgate*.service' 2>/dev/null || true)
[ -z "$links" ] || fail "unit links were created: $links"
if command -v systemctl >/dev/null; then
	for u in dialgate.service dialgate-restore.service; do
		st=$(systemctl is-enabled "$u" 2>/dev/null || true)
		[ "$st" = disabled ] || fail "systemctl is-enabled $u: '$st', want disabled"
		if [ -d /run/systemd/system ]; then
			systemctl is-active --quiet "$u" && fail "$u is active"
		fi
	done
	ok "systemctl is-enabled: disabled (both)"
fi
[ ! -e /var/lib/dialgate ] || fail "/var/lib/dialgate was created by the install"
[ "$run_before" = 1 ] || [ ! -e /run/dialgate ] || fail "/run/dialgate was created by the install"
# Only the packaged binary counts: other dialgates on this machine (a
# developer's bin/dialgate, a test's daemon in a network namespace) are
# none of the package's doing.
procs=
for p in /proc/[0-9]*; do
	exe=$(readlink "$p/exe" 2>/dev/null) || continue
	case $exe in
	/usr/sbin/dialgate | '/usr/sbin/dialgate (deleted)')
		procs+="    pid ${p#/proc/}: $(tr '\0' ' ' <"$p/cmdline" 2>/dev/null)"$'\n'
		;;
	esac
done
[ -z "$procs" ] || fail "the install started /usr/sbin/dialgate:"$'\n'"$procs"
ok "no unit links, no state, no runtime dir, no /usr/sbin/dialgate process"

step "apt-get purge dialgate"
mapfile -t listed < <(dpkg -L dialgate)
files=()
for p in "${listed[@]}"; do
	# Files and file symlinks; directories (and /lib, a symlink to one on
	# merged-/usr systems) are shared with other packages.
	[ -d "$p" ] && continue
	if [ -e "$p" ] || [ -L "$p" ]; then files+=("$p"); fi
done
[ "${#files[@]}" -ge 10 ] || fail "dpkg -L dialgate lists only ${#files[@]} files"
out=$(apt-get purge -y dialgate 2>&1) || {
	printf '%s\n' "$out"
	fail "apt-get purge failed"
}
installed=0
printf '%s\n' "$out" | sed -n '/^dialgate:/,$p' | grep -v '^(Reading database' || true
grep -q 'ipset destroy' <<<"$out" || fail "postrm (remove) did not print how to take the kernel rules out"
grep -q 'were left there' <<<"$out" || fail "postrm (purge) did not say that the kernel rules were left"

step "nothing left"
for p in "${files[@]}"; do
	{ [ ! -e "$p" ] && [ ! -L "$p" ]; } || fail "$p is still there after purge"
done
ok "all ${#files[@]} installed files gone"
for d in /usr/share/doc/dialgate /etc/dialgate /var/lib/dialgate /run/dialgate; do
	[ "$d" = /run/dialgate ] && [ "$run_before" = 1 ] && continue # not the package's
	[ ! -e "$d" ] || fail "$d is still there after purge"
done
ok "/usr/share/doc/dialgate, /etc/dialgate, /var/lib/dialgate, /run/dialgate gone"
left=$(dpkg -l | awk '$2 == "dialgate" || $2 ~ /^dialgate:/' || true)
[ -z "$left" ] || fail "dpkg -l still lists dialgate: $left"
ok "dpkg -l: no dialgate"
links=$(find /etc/systemd/system -name 'dialgate*' 2>/dev/null || true)
[ -z "$links" ] || fail "unit links left: $links"
ok "no unit links"

printf '\ntest-deb: PASS (dialgate %s: built, installed, checked, purged)\n' "$VERSION"
