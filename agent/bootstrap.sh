#!/bin/sh
# shardform node bootstrap: what `shardform node join` and `shardform node
# refresh` do, with curl, for machines without the shardform binary (and for
# cloud-init). It holds no secret: the registration token is an argument.
#
#   curl -fsS https://shardform.example.com/v1/agent/bootstrap.sh | sh -s -- --url https://shardform.example.com --token shardform_reg_...
#   shardform-node refresh        (installed by the join; run every minute)
#
# Options: --url URL --token TOKEN [--name NAME] [--root DIR] [--ipv4 A]
# [--ipv6 A] (join; the address defaults to the one the server is reached from);
# refresh [--root DIR]. Exit codes: 0 done, 1 failed, 2 wrong usage,
# 3 the server refused the token.
set -u
umask 022

URL="" TOKEN="" NAME="" ROOT="/" MODE="join" IPV4="" IPV6=""
if [ "${1:-}" = "refresh" ]; then MODE="refresh"; shift; fi
while [ $# -gt 0 ]; do
	case "$1" in
	--url) URL="${2:-}"; shift 2 ;;
	--token) TOKEN="${2:-}"; shift 2 ;;
	--name) NAME="${2:-}"; shift 2 ;;
	--root) ROOT="${2:-}"; shift 2 ;;
	--ipv4) IPV4="${2:-}"; shift 2 ;;
	--ipv6) IPV6="${2:-}"; shift 2 ;;
	*) echo "shardform-node: unknown argument $1" >&2; exit 2 ;;
	esac
done
ROOT="${ROOT%/}"
SSHDIR="$ROOT/etc/ssh"
STATE="$ROOT/etc/shardform"

fail() { echo "shardform-node: $*" >&2; exit 1; }
command -v curl >/dev/null 2>&1 || fail "curl is required"

# put FILE: replace FILE with FILE.new atomically (a rename).
put() { chmod "${2:-644}" "$1.new" && mv -f "$1.new" "$1"; }

# field NAME: the string values of NAME in the JSON on stdin, one a line
# (the values the server sends here hold no quotes or escapes).
field() { grep -o "\"$1\": *\"[^\"]*\"" | sed "s/^\"$1\": *\"//; s/\"\$//"; }

# fetch PATH FILE: the agent's file into FILE, kept as it is when the server
# cannot answer (a missing RevokedKeys file makes sshd refuse everyone).
fetch() {
	code=$(curl -sS -o "$2.new" -w '%{http_code}' -H "X-Agent-Token: $AGENT_TOKEN" "$URL$1") || { rm -f "$2.new"; return 1; }
	case "$code" in
	200) put "$2" ;;
	401) rm -f "$2.new"; echo "shardform-node: the agent token was refused (was the node deleted?)" >&2; exit 3 ;;
	*) rm -f "$2.new"; return 1 ;;
	esac
}

host_keys() { ls "$SSHDIR"/ssh_host_*_key.pub 2>/dev/null; }

# write_certs: each certificate of the JSON on stdin beside its host key.
write_certs() {
	answer=$(cat)
	n=0
	printf '%s\n' "$answer" | field certificate >"$STATE/certs.tmp"
	printf '%s\n' "$answer" | field public_key >"$STATE/keys.tmp"
	while IFS= read -r key; do
		n=$((n + 1))
		cert=$(sed -n "${n}p" "$STATE/certs.tmp")
		for f in $(host_keys); do
			if [ "$(cut -d' ' -f1-2 "$f")" = "$(printf '%s' "$key" | cut -d' ' -f1-2)" ]; then
				out="${f%.pub}-cert.pub"
				printf '%s\n' "$cert" >"$out.new" && put "$out"
			fi
		done
	done <"$STATE/keys.tmp"
	rm -f "$STATE/certs.tmp" "$STATE/keys.tmp"
}

keys_json() {
	sep=""
	for f in $(host_keys); do
		printf '%s"%s"' "$sep" "$(cut -d' ' -f1-2 "$f")"
		sep=","
	done
}

sshd_snippet() {
	mkdir -p "$SSHDIR/sshd_config.d"
	{
		echo "# Written by shardform bootstrap.sh; shardform-node refresh keeps the files current."
		echo "TrustedUserCAKeys $SSHDIR/shardform_user_ca.pub"
		echo "RevokedKeys $SSHDIR/shardform_revoked.krl"
		for f in $(host_keys); do
			[ -f "${f%.pub}-cert.pub" ] && echo "HostCertificate ${f%.pub}-cert.pub"
		done
	} >"$SSHDIR/sshd_config.d/shardform.conf.new" && put "$SSHDIR/sshd_config.d/shardform.conf"
}

reload_sshd() {
	if [ -f "$ROOT/run/sshd.pid" ]; then kill -HUP "$(cat "$ROOT/run/sshd.pid")" 2>/dev/null || true; fi
}

# cert_principals CERT: the certificate's principals, one a line, sorted
# (ssh-keygen -L; nothing without it).
cert_principals() {
	ssh-keygen -L -f "$1" 2>/dev/null | sed -n '/^ *Principals:/,/^ *Critical Options:/p' | sed '1d;$d' | tr -d ' \t' | grep -v '^$' | sort -u
}

# needs_renewal CERT: missing, naming other principals than the node's now
# ($PRINCIPALS, from the heartbeat: a power cycle gave the node a new
# address), or less than a third of its validity left (read with
# ssh-keygen -L and GNU date; without them, once a day).
needs_renewal() {
	[ -f "$1" ] || return 0
	if [ -n "$PRINCIPALS" ] && have=$(cert_principals "$1") && [ -n "$have" ] && [ "$have" != "$PRINCIPALS" ]; then
		return 0
	fi
	valid=$(ssh-keygen -L -f "$1" 2>/dev/null | sed -n 's/^ *Valid: from \([^ ]*\) to \([^ ]*\)$/\1 \2/p')
	from=$(date -d "${valid% *}" +%s 2>/dev/null) && to=$(date -d "${valid#* }" +%s 2>/dev/null) || {
		[ -n "$(find "$1" -mtime +0 2>/dev/null)" ]
		return
	}
	now=$(date +%s)
	[ $((to - now)) -lt $(((to - from) / 3)) ]
}

# heartbeat: the answer on stdout (its host_principals name what the
# node's host certificates must carry).
heartbeat() {
	curl -fsS -X POST -H "X-Agent-Token: $AGENT_TOKEN" -H 'Content-Type: application/json' \
		-d '{"version":"bootstrap.sh"}' "$URL/v1/agent/heartbeat"
}

# principals_of: the host_principals of the heartbeat answer on stdin, one
# a line, sorted (names and addresses hold no quotes or commas).
principals_of() {
	sed -n 's/.*"host_principals":\[\([^]]*\)\].*/\1/p' | tr ',' '\n' | tr -d '"' | grep -v '^$' | sort -u
}

if [ "$MODE" = "refresh" ]; then
	[ -f "$STATE/agent.json" ] || fail "$STATE/agent.json not found: this machine has not joined"
	URL=$(field url <"$STATE/agent.json")
	AGENT_TOKEN=$(field agent_token <"$STATE/agent.json")
	ok=0
	PRINCIPALS=""
	if hb=$(heartbeat); then PRINCIPALS=$(printf '%s\n' "$hb" | principals_of); else ok=1; fi
	fetch /v1/agent/ssh/ca-public-key "$SSHDIR/shardform_user_ca.pub" || ok=1
	fetch /v1/agent/ssh/krl "$SSHDIR/shardform_revoked.krl" || ok=1
	renew=""
	for f in $(host_keys); do needs_renewal "${f%.pub}-cert.pub" && renew=1; done
	if [ -n "$renew" ]; then
		if answer=$(curl -fsS -X POST -H "X-Agent-Token: $AGENT_TOKEN" -H 'Content-Type: application/json' \
			-d "{\"host_public_keys\":[$(keys_json)]}" "$URL/v1/agent/host-certificates"); then
			printf '%s\n' "$answer" | write_certs && sshd_snippet && reload_sshd
		else
			ok=1
		fi
	fi
	[ $ok -eq 0 ] || fail "refresh from $URL failed (previous files kept)"
	exit 0
fi

[ -n "$URL" ] || { echo "shardform-node: --url is required" >&2; exit 2; }
[ -n "$TOKEN" ] || { echo "shardform-node: --token is required" >&2; exit 2; }
[ -n "$(host_keys)" ] || fail "no host keys in $SSHDIR (ssh_host_*_key.pub): run ssh-keygen -A"
mkdir -p "$STATE" && chmod 700 "$STATE"

cpus=$(getconf _NPROCESSORS_ONLN 2>/dev/null || echo 0)
mem=$(awk '/^MemTotal:/ {print int($2 / 1024)}' /proc/meminfo 2>/dev/null || echo 0)
disk=$(df -Pk "$ROOT" 2>/dev/null | awk 'NR == 2 {print int($2 / 1048576)}')
os=$(. /etc/os-release 2>/dev/null && printf '%s' "${PRETTY_NAME:-linux}" | tr -d '"\\')
kernel=$(uname -r | tr -d '"\\')
arch=$(uname -m | tr -d '"\\')
host=$(hostname | tr -d '"\\')
# The address this machine reaches the server from (ip route get), unless given.
if [ -z "$IPV4$IPV6" ] && command -v ip >/dev/null 2>&1; then
	server=$(printf '%s' "$URL" | sed 's|^[a-z]*://||; s|/.*||; s|^\[\(.*\)\].*|\1|; s|^\([^:]*\):[0-9]*$|\1|')
	case "$server" in
	*[!0-9.:a-fA-F]*) server=$(getent ahosts "$server" 2>/dev/null | awk '{print $1; exit}') ;;
	esac
	src=$(ip route get "$server" 2>/dev/null | sed -n 's/.* src \([0-9a-fA-F.:]*\).*/\1/p' | head -n 1)
	case "$src" in
	*:*) IPV6="$src" ;;
	*.*) IPV4="$src" ;;
	esac
fi
addr_json=""
[ -n "$IPV4" ] && addr_json="$addr_json,\"ipv4\":\"$(printf '%s' "$IPV4" | tr -d '"\\')\""
[ -n "$IPV6" ] && addr_json="$addr_json,\"ipv6\":\"$(printf '%s' "$IPV6" | tr -d '"\\')\""
name_json=""
[ -n "$NAME" ] && name_json=",\"name\":\"$(printf '%s' "$NAME" | tr -d '"\\')\""
body="{\"hostname\":\"$host\"$name_json$addr_json,\"host_public_keys\":[$(keys_json)],\"version\":\"bootstrap.sh\",\"facts\":{\"os\":\"$os\",\"kernel\":\"$kernel\",\"arch\":\"$arch\",\"cpus\":${cpus:-0},\"memory_mib\":${mem:-0},\"disk_gib\":${disk:-0}}}"

code=$(curl -sS -o "$STATE/registration.json" -w '%{http_code}' -X POST -H "Authorization: Bearer $TOKEN" \
	-H 'Content-Type: application/json' -d "$body" "$URL/v1/agent/register") || fail "cannot reach $URL"
chmod 600 "$STATE/registration.json"
case "$code" in
201) ;;
401) rm -f "$STATE/registration.json"; echo "shardform-node: the registration token was refused (used, expired or deleted)" >&2; exit 3 ;;
*) msg=$(field error <"$STATE/registration.json"); rm -f "$STATE/registration.json"; fail "register: $code $msg" ;;
esac
AGENT_TOKEN=$(field agent_token <"$STATE/registration.json")
NODE_ID=$(field id <"$STATE/registration.json" | head -n 1)
[ -n "$AGENT_TOKEN" ] || fail "the server's answer is not a registration"
sep="" files=""
for f in $(host_keys); do files="$files$sep\"$f\""; sep=","; done
printf '{"url":"%s","node_id":"%s","agent_token":"%s","host_keys":[%s]}\n' "$URL" "$NODE_ID" "$AGENT_TOKEN" "$files" >"$STATE/agent.json.new" && put "$STATE/agent.json" 600
write_certs <"$STATE/registration.json"
rm -f "$STATE/registration.json"
fetch /v1/agent/ssh/ca-public-key "$SSHDIR/shardform_user_ca.pub" || fail "fetch the user CA keys"
fetch /v1/agent/ssh/krl "$SSHDIR/shardform_revoked.krl" || fail "fetch the KRL"
sshd_snippet

# node refresh every minute: this script, installed as shardform-node.
mkdir -p "$ROOT/usr/local/sbin"
curl -fsS -o "$ROOT/usr/local/sbin/shardform-node.new" "$URL/v1/agent/bootstrap.sh" && put "$ROOT/usr/local/sbin/shardform-node" 755 ||
	fail "install shardform-node"
refresh="$ROOT/usr/local/sbin/shardform-node refresh --root $ROOT/"
if [ -d "$ROOT/run/systemd/system" ]; then
	mkdir -p "$ROOT/etc/systemd/system"
	printf '[Unit]\nDescription=shardform node refresh\nAfter=network-online.target\n\n[Service]\nType=oneshot\nExecStart=%s\n' "$refresh" >"$ROOT/etc/systemd/system/shardform-refresh.service"
	printf '[Unit]\nDescription=shardform node refresh every minute\n\n[Timer]\nOnBootSec=30s\nOnUnitActiveSec=60s\nAccuracySec=5s\n\n[Install]\nWantedBy=timers.target\n' >"$ROOT/etc/systemd/system/shardform-refresh.timer"
	if [ "$ROOT" = "" ]; then systemctl daemon-reload && systemctl enable --now shardform-refresh.timer; fi
else
	echo "No systemd: add this line to /etc/crontab to refresh every minute:"
	echo "* * * * * root $refresh"
fi
reload_sshd
echo "Joined as node $NODE_ID."
