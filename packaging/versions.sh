# Sourced by test-deb.sh and test-rpm.sh (after they define ok and fail),
# from the repository root: the version checks both packages share.
# The versions: what make builds (scripts/version.sh) must be what git
# describe says, the binary prints GIT_VERSION and the commit, the
# package carries its Debian/RPM spelling VERSION.
eval "$(make -s print-version)"
[ -n "$VERSION" ] || fail "make print-version gave no package version (outside git?)"
describe=$(git describe --tags --match 'v[0-9]*' --abbrev=12 --dirty 2>/dev/null || true)
if [ -n "$describe" ]; then
	[ "$GIT_VERSION" = "${describe#v}" ] || fail "make builds version '$GIT_VERSION', git describe says '$describe'"
else
	[ "$GIT_VERSION" = "$(sh scripts/version.sh)" ] || fail "GIT_VERSION '$GIT_VERSION' is not scripts/version.sh's"
fi
[ "$VERSION" = "$(sh scripts/version.sh --package "$GIT_VERSION")" ] || fail "package version '$VERSION' is not the Debian spelling of '$GIT_VERSION'"
# check_binary BIN: its --version and --version --json name GIT_VERSION
# and COMMIT.
check_binary() {
	local v j
	v=$("$1" --version) || fail "$1 --version failed"
	[ "${v%% (*}" = "dialgate $GIT_VERSION" ] || fail "$1 --version printed '$v', want 'dialgate $GIT_VERSION (...)'"
	grep -qF "(commit ${COMMIT:0:12}, " <<<"$v" || fail "$1 --version printed '$v', want commit ${COMMIT:0:12}"
	j=$("$1" --version --json) || fail "$1 --version --json failed"
	grep -qF "\"version\": \"$GIT_VERSION\"" <<<"$j" || fail "$1 --version --json: $j"
	grep -qF "\"commit\": \"$COMMIT\"" <<<"$j" || fail "$1 --version --json: $j"
	ok "$1 --version: $v"
}
