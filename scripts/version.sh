#!/bin/sh
# dialgate's version, from git (see README, Versions).
#
#   scripts/version.sh                 the version `dialgate --version` prints:
#                                      `git describe --tags` without the leading v
#                                      (0.2.0, 0.2.0-rc1, 0.2.0-3-gabc123def456),
#                                      0.0.0-<commits>-g<commit> before the first
#                                      tag, "dev (outside git)" outside a checkout;
#                                      -dirty is appended for uncommitted changes
#   scripts/version.sh --package [V]   V (default: the above) as a Debian/RPM
#                                      version: a pre-release '-' becomes '~'
#                                      (0.2.0~rc1 sorts before 0.2.0), the
#                                      commits since the tag become +<n>.g<commit>
#                                      (0.2.0+3.gabc123def456 sorts after 0.2.0);
#                                      fails outside git
set -eu
cd "$(dirname "$0")/.."

describe() {
	if ! git rev-parse --git-dir >/dev/null 2>&1; then
		echo "dev (outside git)"
		return
	fi
	if d=$(git describe --tags --match 'v[0-9]*' --abbrev=12 --dirty 2>/dev/null); then
		echo "${d#v}"
		return
	fi
	n=$(git rev-list --count HEAD)
	c=$(git rev-parse --short=12 HEAD)
	dirty=
	git diff --quiet HEAD -- 2>/dev/null || dirty=-dirty
	echo "0.0.0-$n-g$c$dirty"
}

package() {
	v=$1
	case $v in
	"dev (outside git)" | "")
		echo "scripts/version.sh: no package version outside a git checkout; give one: make ... GIT_VERSION=1.2.3" >&2
		exit 1
		;;
	esac
	v=${v#v}
	post=
	case $v in *-dirty)
		v=${v%-dirty}
		post=dirty
		;;
	esac
	# -<n>-g<commit> at the end: commits since the tag.
	if s=$(printf '%s\n' "$v" | sed -n 's/^\(.*\)-\([0-9][0-9]*\)-g\([0-9a-f][0-9a-f]*\)$/\2.g\3/p') && [ -n "$s" ]; then
		v=$(printf '%s\n' "$v" | sed 's/-[0-9][0-9]*-g[0-9a-f][0-9a-f]*$//')
		post=$s${post:+.$post}
	fi
	# What is left of a '-' is a pre-release (v0.2.0-rc1): sorts before.
	case $v in *-*)
		v=$(printf '%s\n' "$v" | sed 's/-/~/; s/-/./g')
		;;
	esac
	v=$v${post:++$post}
	if ! printf '%s\n' "$v" | grep -Eq '^[0-9][A-Za-z0-9.+~]*$'; then
		echo "scripts/version.sh: '$1' gives '$v', not a valid package version" >&2
		exit 1
	fi
	echo "$v"
}

case ${1:-} in
"") describe ;;
--package) package "${2:-$(describe)}" ;;
*)
	echo "usage: scripts/version.sh [--package [VERSION]]" >&2
	exit 2
	;;
esac
