#!/usr/bin/env bash
# make demo: the phone door end to end, in a throwaway sandbox of network
# namespaces. Nothing touches this machine's own firewall; everything is
# removed on exit, unless KEEP=1: then the sandbox (namespaces, running
# daemon, temporary directory) stays for you to explore, and
# `make demo-clean` (scripts/demo.sh clean) removes it.
#
#   pbx       runs `dialgate serve` (198.51.100.1 and 203.0.113.1)
#   phone     the traveling user's softphone (198.51.100.7)
#   stranger  someone else on the Internet (203.0.113.66)
set -euo pipefail

[ "$(id -u)" = 0 ] || { echo "make demo needs root (it creates network namespaces)"; exit 1; }
BIN=$(realpath "${BIN:-bin/dialgate}")
PBX=dgdemo-pbx PHONE=dgdemo-phone STRANGER=dgdemo-stranger
# A kept sandbox records its directory here (it outlives the script).
KEPT=/run/dialgate-demo.dir
DAEMON= DIR=

cleanup() {
	# Every process left in the sandbox's namespaces (the daemon above all).
	for ns in $PBX $PHONE $STRANGER; do
		ip netns pids "$ns" 2>/dev/null | xargs -r kill 2>/dev/null || true
	done
	[ -n "$DAEMON" ] && wait "$DAEMON" 2>/dev/null || true
	# A kept daemon is not this shell's child: wait for it to be gone.
	for _ in $(seq 50); do
		[ -z "$(for ns in $PBX $PHONE $STRANGER; do ip netns pids "$ns" 2>/dev/null; done)" ] && break
		sleep 0.1
	done
	for ns in $PBX $PHONE $STRANGER; do ip netns del "$ns" 2>/dev/null || true; done
	[ -n "$DIR" ] && rm -rf "$DIR"
	rm -f "$KEPT"
}

if [ "${1:-}" = clean ]; then
	# make demo-clean: what KEEP=1 left. The daemon is killed with its
	# namespace's other processes; the directory is the one recorded.
	[ -f "$KEPT" ] && DIR=$(cat "$KEPT")
	case $DIR in /tmp/dialgate-demo.*) ;; *) DIR= ;; esac
	if [ -z "$DIR" ] && ! ip netns list | grep -Eq "^($PBX|$PHONE|$STRANGER)( |$)"; then
		echo "no demo sandbox here"
		exit 0
	fi
	cleanup
	echo "demo sandbox removed (namespaces $PBX $PHONE $STRANGER${DIR:+, $DIR})"
	exit 0
fi

if ip netns list | grep -Eq "^($PBX|$PHONE|$STRANGER)( |$)"; then
	echo "a demo sandbox is still there (make demo KEEP=1?); remove it first: make demo-clean"
	exit 1
fi
DIR=$(mktemp -d /tmp/dialgate-demo.XXXXXX)
export DIALGATE_CONFIG=$DIR/dialgate.toml
trap cleanup EXIT

say() { printf '\n\033[1m== %s\033[0m\n' "$*"; }
pbx() { ip netns exec $PBX "$BIN" "$@"; }

# probe NS DST PORT: a reset (refused) proves the packet got through the
# firewall, a timeout means it was dropped.
probe() {
	local rc=0
	ip netns exec "$1" timeout 2 bash -c "exec 3<>/dev/tcp/$2/$3" 2>/dev/null || rc=$?
	case $rc in
	0 | 1) printf '  %-9s -> %s:%-5s reaches the PBX\n' "$1" "$2" "$3" ;;
	124) printf '  %-9s -> %s:%-5s DROPPED\n' "$1" "$2" "$3" ;;
	*) printf '  %-9s -> %s:%-5s error %s\n' "$1" "$2" "$3" "$rc" ;;
	esac
}

say "building the sandbox"
for ns in $PBX $PHONE $STRANGER; do ip netns add $ns; ip -n $ns link set lo up; done
ip link add d-pbx1 netns $PBX type veth peer name d-phone netns $PHONE
ip link add d-pbx2 netns $PBX type veth peer name d-stranger netns $STRANGER
ip -n $PBX addr add 198.51.100.1/24 dev d-pbx1
ip -n $PBX addr add 203.0.113.1/24 dev d-pbx2
ip -n $PHONE addr add 198.51.100.7/24 dev d-phone
ip -n $STRANGER addr add 203.0.113.66/24 dev d-stranger
for l in "$PBX d-pbx1" "$PBX d-pbx2" "$PHONE d-phone" "$STRANGER d-stranger"; do
	set -- $l; ip -n "$1" link set "$2" up
done
printf 'db = "%s/dialgate.db"\nsocket = "%s/dialgate.sock"\n' "$DIR" "$DIR" >"$DIALGATE_CONFIG"

say "dialgate init"
pbx init
# Not through pbx(): $! must be the daemon itself (ip netns exec execs it).
ip netns exec $PBX "$BIN" serve >"$DIR/serve.log" 2>&1 &
DAEMON=$!
for _ in $(seq 50); do pbx status >/dev/null 2>&1 && break; sleep 0.1; done

say "dialgate status: the firewall is in the PBX's kernel and the daemon guards it"
pbx status

say "an account for Alice: SIP (1, 2) and SSH (8), with a passcode"
pbx account add alice --perms 1,2,8 --comment "Alice, on the road"
out=$(echo 48151623 | pbx account passcode alice --stdin)
echo "$out"
NUMBER=$(sed -n 's/^account number \([0-9]*\):.*/\1/p' <<<"$out")
[ -n "$NUMBER" ] || { echo "no account number in: $out"; exit 1; }
say "her mobile's caller ID 201 identifies her: she keys no account number"
pbx account set alice --callerid 201

say "before the call: the PBX is invisible"
probe $PHONE 198.51.100.1 22
probe $PHONE 198.51.100.1 5060
probe $STRANGER 203.0.113.1 22

say "Alice calls the door from 201 and keys 48151623# (test-call plays Asterisk)"
pbx test-call --passcode 48151623 --callerid 201 --channel SIP/trunk-0000001f --remote-addr 198.51.100.7

say "after the call: Alice's address gets in, nobody else does"
probe $PHONE 198.51.100.1 22
probe $PHONE 198.51.100.1 5060
probe $STRANGER 203.0.113.1 22

say "dialgate grants list"
pbx grants list
say "what the kernel holds (ipset list dialgate-8-v4)"
ip netns exec $PBX ipset list dialgate-8-v4 | sed -n '/Members/,$p'

say "a stranger keys Alice's account number $NUMBER# and a wrong passcode: nothing"
if pbx test-call --account "$NUMBER" --passcode 11112222 --callerid 666 --channel SIP/trunk-00000020 --remote-addr 203.0.113.66; then
	echo "the stranger got in"; exit 1
fi
probe $STRANGER 203.0.113.1 22

say "dialgate lockouts list: the failure counts against the stranger's caller ID and Alice's keyed number, not her caller ID"
pbx lockouts list

if [ "${KEEP:-}" = 1 ]; then
	trap - EXIT
	echo "$DIR" >"$KEPT"
	say "done; the sandbox stays (KEEP=1)"
	cat <<MSG
The daemon runs in namespace $PBX (pid $DAEMON, log $DIR/serve.log);
config, database and socket are in $DIR. Try:
    ip netns exec $PBX $BIN --config $DIALGATE_CONFIG status
    ip netns exec $PBX $BIN --config $DIALGATE_CONFIG grants list
    ip netns exec $PBX $BIN --config $DIALGATE_CONFIG audit
    ip netns exec $PBX ipset list -n
    ip netns exec $STRANGER timeout 2 bash -c 'exec 3<>/dev/tcp/203.0.113.1/22' || echo dropped
Remove it all (daemon, namespaces, $DIR) with:
    make demo-clean        # or: scripts/demo.sh clean
MSG
	exit 0
fi
say "done; cleaning up"
