#!/usr/bin/env bash
# make install and make uninstall into a temporary DESTDIR, checked: what
# lands where, the units' paths rewritten to the installed binary, and
# that nothing is left after uninstall. Touches nothing outside the
# temporary directory and build/; needs no root.
#
#   bash packaging/test-install.sh      # or: make test-install
set -euo pipefail
cd "$(dirname "$0")/.."

fail() {
	printf '\ntest-install: FAIL: %s\n' "$*" >&2
	exit 1
}
ok() { printf '   ok: %s\n' "$*"; }

D=$(mktemp -d /tmp/dialgate-install.XXXXXX)
trap 'rm -rf "$D"' EXIT
PREFIX=/opt/dg # not the default, so the rewriting is seen to follow it
UNITDIR=/etc/systemd/system

printf '== make install DESTDIR=%s PREFIX=%s\n' "$D" "$PREFIX"
out=$(make install DESTDIR="$D" PREFIX="$PREFIX" 2>&1) || {
	printf '%s\n' "$out"
	fail "make install failed"
}
grep -q 'nothing was enabled or started' <<<"$out" || fail "make install did not print its next steps"

bin=$D$PREFIX/sbin/dialgate
[ -x "$bin" ] || fail "$bin missing or not executable"
[ "$(stat -c %a "$bin")" = 755 ] || fail "$bin mode $(stat -c %a "$bin")"
v=$("$bin" --version) || fail "$bin --version failed"
ok "$PREFIX/sbin/dialgate: $v"

for u in dialgate.service dialgate-restore.service; do
	f=$D$UNITDIR/$u
	[ -f "$f" ] || fail "$f missing"
	grep -q '/usr/sbin/dialgate' "$f" && fail "$u still names /usr/sbin/dialgate"
	grep -q 'README.Debian' "$f" && fail "$u still names README.Debian"
done
grep -qx "ExecStart=$PREFIX/sbin/dialgate serve" "$D$UNITDIR/dialgate.service" || fail "dialgate.service ExecStart not rewritten"
grep -qx "ExecStart=$PREFIX/sbin/dialgate restore" "$D$UNITDIR/dialgate-restore.service" || fail "dialgate-restore.service ExecStart not rewritten"
grep -q "^Documentation=man:dialgate-serve(8) file://$PREFIX/share/doc/dialgate/README.packaging.md$" "$D$UNITDIR/dialgate.service" ||
	fail "dialgate.service Documentation not rewritten"
# Apart from those paths the units are the packaged ones, which test-deb
# checks with systemd-analyze verify (here the binary is not in place).
for u in dialgate.service dialgate-restore.service; do
	diff <(sed -e "s|$PREFIX/sbin/dialgate|/usr/sbin/dialgate|g" \
		-e "s|$PREFIX/share/doc/dialgate/README.packaging.md|/usr/share/doc/dialgate/README.Debian|g" \
		"$D$UNITDIR/$u") "packaging/$u" >/dev/null || fail "$u differs from packaging/$u beyond the paths"
done
ok "units in $UNITDIR, ExecStart=$PREFIX/sbin/dialgate, otherwise as packaged"
man=$D$PREFIX/share/man
for f in man8/dialgate.8.gz man8/dialgate-init.8.gz man8/dialgate-serve.8.gz man5/dialgate.toml.5.gz; do
	{ [ -s "$man/$f" ] && gzip -t "$man/$f"; } || fail "$man/$f missing or not gzip"
done
grep -qx '\.SH EXIT STATUS' <(zcat "$man/man8/dialgate.8.gz") || fail "dialgate.8 has no EXIT STATUS"
ok "$(find "$man" -name '*.gz' | wc -l) man pages, dialgate.toml(5) among them"
share=$D$PREFIX/share
bash -n "$share/bash-completion/completions/dialgate" || fail "bash completion missing or does not parse"
[ "$(head -1 "$share/zsh/site-functions/_dialgate")" = '#compdef dialgate' ] || fail "zsh completion"
grep -q 'complete -c dialgate' "$share/fish/vendor_completions.d/dialgate.fish" || fail "fish completion"
ok "bash, zsh, fish completions"
for f in README.md README.packaging.md dialgate.toml.example; do
	[ -s "$share/doc/dialgate/$f" ] || fail "doc $f missing"
done
ok "docs in $PREFIX/share/doc/dialgate"
others=$(cd "$D" && find . -mindepth 1 \( -type f -o -type l \) | grep -v -e "^\.$PREFIX/" -e "^\.$UNITDIR/dialgate" || true)
[ -z "$others" ] || fail "make install put files elsewhere: $others"
ok "nothing outside $PREFIX and the two units"

printf '== make uninstall DESTDIR=%s PREFIX=%s\n' "$D" "$PREFIX"
mkdir -p "$D/etc/dialgate" && echo keep >"$D/etc/dialgate/dialgate.toml"
make -s uninstall DESTDIR="$D" PREFIX="$PREFIX" >/dev/null || fail "make uninstall failed"
left=$(cd "$D" && find . -type f -o -type l)
[ "$left" = ./etc/dialgate/dialgate.toml ] || fail "after uninstall, left: $left (want only the config)"
ok "every installed file gone; /etc/dialgate/dialgate.toml kept"

printf '\ntest-install: PASS\n'
