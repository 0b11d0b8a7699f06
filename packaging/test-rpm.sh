#!/usr/bin/env bash
# Build the RPM (and the .deb, to compare), then check it without an RPM
# distribution: its metadata, that it holds the .deb's files (units under
# /usr/lib, zsh completion in site-functions), its scriptlets (as built
# from packaging/scripts/rpm, run against a stub systemctl in a private
# mount namespace), and an install into a throwaway root with rpm(8).
# Nothing on this machine changes outside build/ and a temporary
# directory. Needs rpm(8) (apt-get install rpm), dpkg-deb, and root (the
# scriptlet runs mount tmpfs in their own mount namespace).
#
#   bash packaging/test-rpm.sh          # or: make test-rpm
set -euo pipefail
cd "$(dirname "$0")/.."

step() { printf '\n== %s\n' "$*"; }
ok() { printf '   ok: %s\n' "$*"; }
fail() {
	printf '\ntest-rpm: FAIL: %s\n' "$*" >&2
	exit 1
}
[ "$(id -u)" = 0 ] || fail "needs root (unshare -m and mount for the scriptlet runs)"
command -v rpm >/dev/null || fail "needs rpm(8): apt-get install rpm"
command -v dpkg-deb >/dev/null || fail "needs dpkg-deb (to compare with the .deb)"

# The versions (what make builds, git describe, the binary, the package).
. packaging/versions.sh

T=$(mktemp -d /tmp/dialgate-rpm.XXXXXX)
trap 'rm -rf "$T"' EXIT

step "make rpm deb VERSION=$VERSION"
rm -f build/dialgate-*.rpm build/dialgate_*.deb
make -s rpm >/dev/null
make -s deb >/dev/null
pkg=build/dialgate-$VERSION-1.x86_64.rpm
deb=build/dialgate_${VERSION}_amd64.deb
[ -f "$pkg" ] || fail "make rpm did not produce $pkg"
ok "$pkg ($(stat -c %s "$pkg") bytes)"

step "metadata"
q() { rpm -qp --qf "$1" "$pkg"; }
[ "$(q '%{LICENSE}')" = GPL-3.0-or-later ] || fail "License: $(q '%{LICENSE}')"
[ "$(q '%{NAME} %{VERSION} %{RELEASE} %{ARCH}')" = "dialgate $VERSION 1 x86_64" ] || fail "NAME VERSION RELEASE ARCH: $(q '%{NAME} %{VERSION} %{RELEASE} %{ARCH}')"
requires=$(rpm -qpR "$pkg" | awk '{print $1}' | sort | tr '\n' ' ')
for d in iptables ipset iproute; do
	grep -qw -- "$d" <<<"$requires" || fail "Requires ($requires) lacks $d"
done
grep -qw iproute2 <<<"$requires" && fail "Requires names iproute2, which RPM distributions call iproute"
recommends=$(rpm -qp --recommends "$pkg" | tr '\n' ' ')
grep -qw bash-completion <<<"$recommends" || fail "Recommends ($recommends) lacks bash-completion"
ok "dialgate $VERSION-1 x86_64 (git $GIT_VERSION, License $(q '%{LICENSE}')); Requires: $requires; Recommends: $recommends"

step "contents: the .deb's, RPM paths"
rpm -qlp "$pkg" | sort >"$T/rpm.list"
# The .deb's files and its one own directory, /etc/dialgate, with the
# paths that differ mapped to the RPM's.
dpkg-deb -c "$deb" | awk '$1 !~ /^d/ {print $6} $1 ~ /^d/ && $6 == "./etc/dialgate/" {print $6}' |
	sed -e 's|^\./|/|' -e 's|/$||' \
		-e 's|^/lib/systemd/system/|/usr/lib/systemd/system/|' \
		-e 's|^/usr/share/zsh/vendor-completions/|/usr/share/zsh/site-functions/|' |
	grep -v '^/usr/share/lintian/' | sort >"$T/deb.list" # lintian overrides: Debian only
if ! diff "$T/deb.list" "$T/rpm.list"; then
	fail "the RPM's files differ from the .deb's (< deb, > rpm, paths mapped)"
fi
ok "$(wc -l <"$T/rpm.list") paths, the .deb's with /usr/lib/systemd/system and zsh/site-functions"
for u in dialgate.service dialgate-restore.service; do
	grep -qx "/usr/lib/systemd/system/$u" "$T/rpm.list" || fail "$u not in /usr/lib/systemd/system"
done
mode=$(rpm -qp --qf '[%{FILEMODES:perms} %{FILENAMES}\n]' "$pkg")
grep -qx -- '-rwxr-xr-x /usr/sbin/dialgate' <<<"$mode" || fail "/usr/sbin/dialgate mode: $(grep /usr/sbin/dialgate <<<"$mode")"
grep -qx 'drwxr-xr-x /etc/dialgate' <<<"$mode" || fail "/etc/dialgate mode: $(grep /etc/dialgate <<<"$mode")"
grep -q ' /etc/dialgate/' <<<"$mode" && fail "the RPM ships a file in /etc/dialgate"
ok "/usr/sbin/dialgate 0755, /etc/dialgate 0755 and empty"

step "scriptlets"
for tag in POSTIN:post PREUN:preun POSTUN:postun; do
	q "%{${tag%%:*}}" >"$T/${tag#*:}"
	# nfpm stores the script as given; compare ignoring a trailing newline.
	[ "$(cat "$T/${tag#*:}")" = "$(cat "packaging/scripts/rpm/${tag#*:}")" ] ||
		fail "%${tag#*:} in the RPM is not packaging/scripts/rpm/${tag#*:}"
	sh -n "$T/${tag#*:}" || fail "%${tag#*:} does not parse"
done
for tag in PREIN PRETRANS POSTTRANS; do
	[ "$(q "%{$tag}")" = "(none)" ] || fail "unexpected %$tag scriptlet"
done
ok "%post, %preun, %postun are packaging/scripts/rpm/*, and parse; no others"

# Run each scriptlet with rpm's argument against a stub systemctl that logs
# its calls (systemd counted as running, /run/systemd/system on a tmpfs),
# in a private mount namespace where /var/lib is an empty tmpfs: with and
# without a database, nothing of this machine's is seen or changed.
mkdir -p "$T/bin"
cat >"$T/bin/systemctl" <<'STUB'
#!/bin/sh
echo "systemctl $*" >>"$STUBLOG"
case "$1" in is-enabled) [ -e "$STUBSTATE/enabled" ] ;; *) exit 0 ;; esac
STUB
chmod +x "$T/bin/systemctl"
# run NAME ARG DB(0|1) ENABLED(0|1): the scriptlet's output; calls in $T/log
run() {
	: >"$T/log"
	rm -f "$T/enabled"
	[ "$4" = 1 ] && : >"$T/enabled"
	STUBLOG=$T/log STUBSTATE=$T PATH="$T/bin:$PATH" unshare -m sh -c '
		set -e
		mount -t tmpfs none /var/lib
		mount -t tmpfs none /run
		mkdir -p /run/systemd/system
		[ "$3" = 0 ] || { mkdir /var/lib/dialgate; : >/var/lib/dialgate/dialgate.db; }
		exec sh "$1" "$2"' sh "$T/$1" "$2" "$3"
}
calls() { grep -v -e daemon-reload -e is-enabled "$T/log" | tr '\n' ';' || true; }

out=$(run post 1 0 0)
[ -z "$(calls)" ] || fail "%post 1 (first install, no database) called: $(calls)"
grep -q 'dialgate init' <<<"$out" || fail "%post 1 did not tell the administrator to run dialgate init"
grep -qx 'systemctl daemon-reload' "$T/log" || fail "%post 1 did not daemon-reload"
ok "%post 1, no database: daemon-reload only, says: dialgate init"
out=$(run post 1 1 0)
[ "$(calls)" = "systemctl enable dialgate-restore.service dialgate.service;" ] || fail "%post 1 with a database called: $(calls)"
grep -q 'Nothing was started' <<<"$out" || fail "%post 1 with a database did not say nothing was started"
ok "%post 1, database there: enables both units for the next boot, starts nothing"
run post 2 1 0 >/dev/null
[ -z "$(calls)" ] || fail "%post 2 (upgrade of a disabled install) called: $(calls)"
ok "%post 2, disabled: stays disabled"
run post 2 1 1 >/dev/null
[ "$(calls)" = "systemctl enable dialgate-restore.service dialgate.service;systemctl try-restart dialgate.service;" ] ||
	fail "%post 2 (upgrade of an enabled install) called: $(calls)"
ok "%post 2, enabled: links refreshed, try-restart"
run preun 1 1 1 >/dev/null
[ ! -s "$T/log" ] || fail "%preun 1 (upgrade) called: $(tr '\n' ';' <"$T/log")"
run preun 0 1 1 >/dev/null
[ "$(calls)" = "systemctl stop dialgate.service dialgate-restore.service;systemctl disable dialgate.service dialgate-restore.service;" ] ||
	fail "%preun 0 (erase) called: $(calls)"
ok "%preun: nothing on upgrade; stop and disable on erase"
out=$(run postun 1 1 1)
{ [ -z "$out" ] && [ ! -s "$T/log" ]; } || fail "%postun 1 (upgrade) did something"
out=$(run postun 0 1 1)
grep -q 'ipset destroy' <<<"$out" || fail "%postun 0 did not print how to take the kernel rules out"
grep -q 'Kept: /var/lib/dialgate' <<<"$out" || fail "%postun 0 did not say the state is kept"
ok "%postun: nothing on upgrade; on erase prints how to remove the rules, keeps the state"

step "rpm -i into a throwaway root"
R=$T/root
mkdir -p "$R"
# Debian's rpm keeps its database in ~/.rpmdb; an RPM system's place:
rr() { rpm --root "$R" --dbpath /var/lib/rpm "$@"; }
# Debian's rpm(8) warns that it is not for installing packages here; that
# is what --root into a throwaway directory is for.
rr --initdb
rr -i --nodeps --noscripts "$pkg" 2>"$T/err" || {
	cat "$T/err"
	fail "rpm -i --root failed"
}
[ "$(rr -q dialgate)" = "dialgate-$VERSION-1.x86_64" ] || fail "rpm -q in the root: $(rr -q dialgate)"
v=$(rr -V --nodeps dialgate) || fail "rpm -V in the root: $v"
check_binary "$R/usr/sbin/dialgate"
for u in dialgate.service dialgate-restore.service; do
	cmp -s "$R/usr/lib/systemd/system/$u" "packaging/$u" || fail "$u in the root differs from packaging/$u"
done
[ "$(zcat "$R/usr/share/man/man5/dialgate.toml.5.gz" | grep -c '^db = ')" = 1 ] || fail "dialgate.toml(5) in the root"
ok "installed, rpm -V clean, binary runs, units as packaged"
rr -e --nodeps --noscripts dialgate 2>"$T/err" || {
	cat "$T/err"
	fail "rpm -e --root failed"
}
left=$(cd "$R" && find . \( -type f -o -type l \) -not -path './var/lib/rpm/*')
[ -z "$left" ] || fail "left after rpm -e: $left"
[ ! -e "$R/etc/dialgate" ] || fail "/etc/dialgate left after rpm -e"
ok "rpm -e removed every file and /etc/dialgate"

printf '\ntest-rpm: PASS (dialgate-%s-1.x86_64.rpm)\n' "$VERSION"
