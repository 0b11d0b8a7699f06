#!/usr/bin/env bash
# make release twice and compare: same commit, same bytes. Each build runs
# in a fresh clone of HEAD at a different path (so no build path leaks in),
# the second with an empty Go build cache (so nothing is merely reused
# from the first; about 5 minutes; SHARED_CACHE=1 skips that, for CI,
# about 1); then their SHA256SUMS and every file are compared byte
# for byte. Uncommitted changes are not in the clones. Needs no root;
# touches nothing outside a temporary directory.
#
#   bash packaging/test-release.sh      # or: make test-release
#   KEEP=1 ...                          # leave the two trees (path printed)
#   SHARED_CACHE=1 RELEASE_ARCHES=amd64 ...   # CI's quicker check
set -euo pipefail
cd "$(dirname "$0")/.."

fail() {
	printf '\ntest-release: FAIL: %s\n' "$*" >&2
	exit 1
}

T=$(mktemp -d /tmp/dialgate-release.XXXXXX)
if [ "${KEEP:-}" = 1 ]; then
	echo "test-release: keeping $T"
else
	trap 'chmod -R u+w "$T" 2>/dev/null; rm -rf "$T"' EXIT
fi
if [ -n "$(git status --porcelain --untracked-files=no)" ]; then
	echo "test-release: note: uncommitted changes here are not in the clones; this tests HEAD ($(git rev-parse --short=12 HEAD))"
fi

one=$T/one/dialgate
two=$T/second-build/elsewhere/dialgate
for d in "$one" "$two"; do
	mkdir -p "$(dirname "$d")"
	git clone -q . "$d"
	git -C "$d" checkout -q --detach "$(git rev-parse HEAD)"
done
printf '== make release in %s\n' "$one"
make -C "$one" -s release >"$T/one.log" 2>&1 || { cat "$T/one.log"; fail "make release (first) failed"; }
cache=$T/gocache
if [ "${SHARED_CACHE:-}" = 1 ]; then
	cache=$(go env GOCACHE)
fi
printf '== make release in %s, GOCACHE=%s\n' "$two" "$cache"
GOCACHE=$cache make -C "$two" -s release >"$T/two.log" 2>&1 || { cat "$T/two.log"; fail "make release (second) failed"; }

r1=$one/build/release r2=$two/build/release
cat "$r1/SHA256SUMS"
arches=${RELEASE_ARCHES:-amd64 arm64}
n=$(wc -l <"$r1/SHA256SUMS")
want=$((3 * $(wc -w <<<"$arches")))
[ "$n" = "$want" ] || fail "SHA256SUMS lists $n files, want $want (a binary, a .deb, an .rpm per arch: $arches)"
for a in $arches; do
	case $a in amd64) ra=x86_64 ;; arm64) ra=aarch64 ;; *) ra=$a ;; esac
	ls "$r1" | grep -q "^dialgate-.*-linux-$a$" || fail "no $a binary"
	ls "$r1" | grep -q "^dialgate_.*_$a\.deb$" || fail "no $a .deb"
	ls "$r1" | grep -q "^dialgate-.*\.$ra\.rpm$" || fail "no $ra .rpm"
done
(cd "$r1" && sha256sum --quiet -c SHA256SUMS) || fail "SHA256SUMS does not match the files"
cmp "$r1/SHA256SUMS" "$r2/SHA256SUMS" || {
	diff "$r1/SHA256SUMS" "$r2/SHA256SUMS" || true
	fail "the two builds differ"
}
diff -r "$r1" "$r2" >/dev/null || fail "the release directories differ"
printf '\ntest-release: PASS (%d files byte-identical across two builds; SHA256SUMS %s)\n' "$n" "$(sha256sum "$r1/SHA256SUMS" | cut -c1-16)"
