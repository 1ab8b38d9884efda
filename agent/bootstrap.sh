#!/bin/sh
# shardform node bootstrap: what `shardform node join` and `shardform node
# refresh` do, with curl, for machines without the shardform binary (and for
# cloud-init). It holds no secret: the registration token is an argument.
#
#   curl -fsS https://shardform.example.com/v1/agent/bootstrap.sh | sh -s -- --url https://shardform.example.com --token shardform_reg_...
#   shardform-node refresh        (installed by the join; run every minute)
#
# Options: --url URL --token TOKEN [--name NAME] [--labels k=v,...] [--root DIR]
# [--ipv4 A] [--ipv6 A] (join; the address defaults to the one the server is
# reached from); refresh [--root DIR]. A join on a machine that has joined
# (an agent token in etc/shardform/agent.json) refreshes instead of
# registering again; it registers only when the server refuses that agent
# token (the node was deleted). Exit codes: 0 done, 1 failed, 2 wrong usage,
# 3 the server refused the token.
set -u
umask 022
LC_ALL=C
export LC_ALL

URL="" TOKEN="" NAME="" ROOT="/" MODE="join" IPV4="" IPV6="" LABELS=""
if [ "${1:-}" = "refresh" ]; then MODE="refresh"; shift; fi
usage() { echo "shardform-node: $*" >&2; exit 2; }
while [ $# -gt 0 ]; do
	case "$1" in
	--url | --token | --name | --labels | --root | --ipv4 | --ipv6) [ $# -ge 2 ] || usage "$1 needs a value" ;;
	*) usage "unknown argument $1" ;;
	esac
	case "$1" in
	--url) URL="$2" ;;
	--token) TOKEN="$2" ;;
	--name) NAME="$2" ;;
	--labels) LABELS="$LABELS,$2" ;;
	--root) ROOT="$2" ;;
	--ipv4) IPV4="$2" ;;
	--ipv6) IPV6="$2" ;;
	esac
	shift 2
done
ROOT="${ROOT%/}"
SSHDIR="$ROOT/etc/ssh"
STATE="$ROOT/etc/shardform"
NODE="$ROOT/usr/local/sbin/shardform-node"

fail() { echo "shardform-node: $*" >&2; exit 1; }
command -v curl >/dev/null 2>&1 || fail "curl is required"

# put FILE: replace FILE with FILE.new atomically (a rename).
put() { chmod "${2:-644}" "$1.new" && mv -f "$1.new" "$1"; }

# json_str STRING: STRING as a JSON string, quotes included: printable
# ASCII only (control characters and other bytes are dropped), backslashes
# and quotes escaped. Every string this script sends goes through it.
json_str() {
	printf '"%s"' "$(printf '%s' "$1" | tr -cd '\040-\176' | sed 's/\\/\\\\/g; s/"/\\"/g')"
}

# num VALUE: VALUE when it is a whole number, else 0.
num() {
	case "$1" in
	'' | *[!0-9]*) echo 0 ;;
	*) echo "$1" ;;
	esac
}

# field NAME: the string values of NAME in the JSON on stdin, one a line
# (the values read with it hold no quotes or escapes).
field() { grep -o "\"$1\": *\"[^\"]*\"" | sed "s/^\"$1\": *\"//; s/\"\$//"; }

# etag_of KEY: the ETag named KEY in the JSON on stdin (an "etags" map of
# a heartbeat answer, a registration or agent.json), without its quotes.
etag_of() { grep -o "\"$1\": *\"\\\\\"[0-9a-f]*\\\\\"\"" | head -n 1 | sed 's/^.*: *"\\"//; s/\\""$//'; }

# The agent state: the server, the node and its agent token, the trust
# files' ETags (agent.json; node refresh of the binary reads it too).
AGENT_TOKEN="" NODE_ID="" NODE_NAME="" ORG_ID="" ETAG_CA="" ETAG_KRL=""

load_state() {
	URL=$(field url <"$STATE/agent.json" | head -n 1)
	AGENT_TOKEN=$(field agent_token <"$STATE/agent.json" | head -n 1)
	NODE_ID=$(field node_id <"$STATE/agent.json" | head -n 1)
	NODE_NAME=$(field node_name <"$STATE/agent.json" | head -n 1)
	ORG_ID=$(field organization_id <"$STATE/agent.json" | head -n 1)
	ETAG_CA=$(etag_of user_ca <"$STATE/agent.json")
	ETAG_KRL=$(etag_of krl <"$STATE/agent.json")
}

# save_state: agent.json from the variables, mode 0600 from its first byte.
save_state() {
	keys="" sep=""
	for f in $(host_keys); do keys="$keys$sep$(json_str "$f")"; sep=","; done
	etags="" sep=""
	[ -n "$ETAG_CA" ] && etags="\"user_ca\":\"\\\"$ETAG_CA\\\"\"" sep=","
	[ -n "$ETAG_KRL" ] && etags="$etags$sep\"krl\":\"\\\"$ETAG_KRL\\\"\""
	(
		umask 077
		printf '{"url":%s,"node_id":%s,"node_name":%s,"organization_id":%s,"agent_token":%s,"host_keys":[%s],"etags":{%s}}\n' \
			"$(json_str "$URL")" "$(json_str "$NODE_ID")" "$(json_str "$NODE_NAME")" "$(json_str "$ORG_ID")" \
			"$(json_str "$AGENT_TOKEN")" "$keys" "$etags" >"$STATE/agent.json.new"
	) && put "$STATE/agent.json" 600
}

# fetch PATH FILE ETAG: the agent's file into FILE unless the server
# answers that ETAG (what FILE holds) is current (304); kept as it is when
# the server cannot answer (a missing RevokedKeys file makes sshd refuse
# everyone). The file's new ETag in $GOT_ETAG.
fetch() {
	GOT_ETAG="$3"
	inm=""
	[ -n "$3" ] && [ -f "$2" ] && inm="\"$3\""
	code=$(curl -sS -o "$2.new" -D "$2.hdr" -w '%{http_code}' -H "X-Agent-Token: $AGENT_TOKEN" ${inm:+-H "If-None-Match: $inm"} "$URL$1") || {
		rm -f "$2.new" "$2.hdr"
		return 1
	}
	case "$code" in
	200)
		GOT_ETAG=$(sed -n 's/^[Ee][Tt][Aa][Gg]: *"\([0-9a-f]*\)".*/\1/p' "$2.hdr" | head -n 1)
		rm -f "$2.hdr"
		put "$2"
		;;
	304) rm -f "$2.new" "$2.hdr" ;;
	401) rm -f "$2.new" "$2.hdr"; refused ;;
	*) rm -f "$2.new" "$2.hdr"; return 1 ;;
	esac
}

refused() { echo "shardform-node: the agent token was refused (was the node deleted?)" >&2; exit 3; }

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
		printf '%s%s' "$sep" "$(json_str "$(cut -d' ' -f1-2 "$f")")"
		sep=","
	done
}

# sshd_snippet: the sshd_config.d snippet, once both trust files are there
# (a RevokedKeys file that is missing makes sshd refuse everyone).
sshd_snippet() {
	[ -f "$SSHDIR/shardform_user_ca.pub" ] && [ -f "$SSHDIR/shardform_revoked.krl" ] || return 1
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

# os_name: PRETTY_NAME of root's os-release (else the machine's), read, not run.
os_name() {
	for f in "$ROOT/etc/os-release" /etc/os-release; do
		if [ -f "$f" ]; then
			sed -n 's/^PRETTY_NAME=//p' "$f" | head -n 1 | sed "s/^[\"']//; s/[\"']\$//"
			return
		fi
	done
	echo linux
}

# arch: as the binary names it (Go's GOARCH), for the common machines.
arch() {
	case "$(uname -m)" in
	x86_64) echo amd64 ;;
	aarch64 | arm64) echo arm64 ;;
	i?86) echo 386 ;;
	*) uname -m ;;
	esac
}

cpu_count() {
	n=$(grep -c '^processor' /proc/cpuinfo 2>/dev/null)
	[ "$(num "$n")" -gt 0 ] || n=$(getconf _NPROCESSORS_ONLN 2>/dev/null)
	num "$n"
}

# meminfo KEY: /proc/meminfo's KEY in MiB.
meminfo() { num "$(awk -v k="$1:" '$1 == k {print int($2 / 1024); exit}' /proc/meminfo 2>/dev/null)"; }

# disk_gib COLUMN: df's total (2) or available (4) size of root, in GiB.
disk_gib() { num "$(df -Pk "${ROOT:-/}" 2>/dev/null | awk -v c="$1" 'NR == 2 {print int($c / 1048576)}')"; }

# network_json: the interfaces of `ip -o link` with the addresses of `ip
# -o addr` ([] without ip). Names, MACs and addresses keep only the
# characters they are made of, so nothing in them is JSON syntax.
network_json() {
	if ! command -v ip >/dev/null 2>&1; then
		printf '[]'
		return
	fi
	{
		ip -o link show 2>/dev/null | sed 's/^/L /'
		ip -o addr show 2>/dev/null | sed 's/^/A /'
	} | awk '
	function clean(s) { gsub(/[^A-Za-z0-9._:\/%+-]/, "", s); return s }
	function ifname(s) { sub(/:$/, "", s); sub(/@.*/, "", s); return clean(s) }
	$1 == "L" {
		name = ifname($3)
		if (name == "" || (name in seen)) next
		seen[name] = 1
		order[++n] = name
		up[name] = ($4 ~ /[<,]UP[,>]/) ? "true" : "false"
		mtu[name] = 0
		mac[name] = ""
		for (i = 5; i < NF; i++) {
			if ($i == "mtu" && $(i + 1) ~ /^[0-9]+$/) mtu[name] = $(i + 1)
			if ($i == "link/ether") mac[name] = clean($(i + 1))
		}
		next
	}
	$1 == "A" && ($4 == "inet" || $4 == "inet6") {
		name = ifname($3)
		a = clean($5)
		if (a != "") addrs[name] = addrs[name] (addrs[name] == "" ? "" : ",") "\"" a "\""
	}
	END {
		printf "["
		for (i = 1; i <= n; i++) {
			k = order[i]
			printf "%s{\"name\":\"%s\",\"mac\":\"%s\",\"mtu\":%d,\"up\":%s,\"addresses\":[%s]}", (i > 1 ? "," : ""), k, mac[k], mtu[k], up[k], addrs[k]
		}
		printf "]"
	}'
}

# inventory_json: what a heartbeat reports, in the shape of the binary's
# (system, network, disks), from /proc, df, os-release and ip.
inventory_json() {
	up=$(num "$(awk '{print int($1)}' /proc/uptime 2>/dev/null)")
	load=$(awk '{for (i = 1; i <= 3; i++) if ($i ~ /^[0-9.]+$/) printf "%s\"%s\"", (i > 1 ? "," : ""), $i; exit}' /proc/loadavg 2>/dev/null)
	printf '{"system":{"arch":%s,"cpus":%s,"os":%s,"kernel":%s,"memory_total_mib":%s,"memory_available_mib":%s,"uptime_seconds":%s,"load":[%s]},' \
		"$(json_str "$(arch)")" "$(cpu_count)" "$(json_str "$(os_name)")" "$(json_str "$(uname -r)")" \
		"$(meminfo MemTotal)" "$(meminfo MemAvailable)" "$up" "$load"
	printf '"network":%s,' "$(network_json)"
	printf '"disks":[{"mount":"/","total_gib":%s,"free_gib":%s}]}' "$(disk_gib 2)" "$(disk_gib 4)"
}

# heartbeat: the answer on stdout (its etags name the trust files' current
# versions, its host_principals what the host certificates must carry).
heartbeat() {
	hb_code=$(curl -sS -o "$STATE/heartbeat.json" -w '%{http_code}' -X POST -H "X-Agent-Token: $AGENT_TOKEN" \
		-H 'Content-Type: application/json' -d "{\"version\":\"bootstrap.sh\",\"inventory\":$(inventory_json)}" \
		"$URL/v1/agent/heartbeat") || { rm -f "$STATE/heartbeat.json"; return 1; }
	case "$hb_code" in
	200) cat "$STATE/heartbeat.json"; rm -f "$STATE/heartbeat.json" ;;
	401) rm -f "$STATE/heartbeat.json"; refused ;;
	*) rm -f "$STATE/heartbeat.json"; return 1 ;;
	esac
}

# principals_of: the host_principals of the heartbeat answer on stdin, one
# a line, sorted (names and addresses hold no quotes or commas).
principals_of() {
	sed -n 's/.*"host_principals":\[\([^]]*\)\].*/\1/p' | tr ',' '\n' | tr -d '"' | grep -v '^$' | sort -u
}

# refresh: the heartbeat with the inventory; the trust files only when its
# etags differ from the ones kept (an unchanged refresh is that one
# request); the host certificates when they need renewal.
refresh() {
	[ -f "$STATE/agent.json" ] || fail "$STATE/agent.json not found: this machine has not joined"
	load_state
	[ -n "$AGENT_TOKEN" ] || fail "$STATE/agent.json holds no agent token: join again"
	ok=0
	PRINCIPALS=""
	hb=$(heartbeat)
	case $? in
	0) PRINCIPALS=$(printf '%s\n' "$hb" | principals_of) ;;
	3) exit 3 ;;
	*) ok=1 hb="" ;;
	esac
	cur_ca=$(printf '%s\n' "$hb" | etag_of user_ca)
	cur_krl=$(printf '%s\n' "$hb" | etag_of krl)
	saved="$ETAG_CA $ETAG_KRL"
	if [ -z "$cur_ca" ] || [ "$cur_ca" != "$ETAG_CA" ] || [ ! -f "$SSHDIR/shardform_user_ca.pub" ]; then
		if fetch /v1/agent/ssh/ca-public-key "$SSHDIR/shardform_user_ca.pub" "$ETAG_CA"; then ETAG_CA="$GOT_ETAG"; else ok=1; fi
	fi
	if [ -z "$cur_krl" ] || [ "$cur_krl" != "$ETAG_KRL" ] || [ ! -f "$SSHDIR/shardform_revoked.krl" ]; then
		if fetch /v1/agent/ssh/krl "$SSHDIR/shardform_revoked.krl" "$ETAG_KRL"; then ETAG_KRL="$GOT_ETAG"; else ok=1; fi
	fi
	[ "$saved" = "$ETAG_CA $ETAG_KRL" ] || save_state || ok=1
	renew=""
	for f in $(host_keys); do needs_renewal "${f%.pub}-cert.pub" && renew=1; done
	if [ -n "$renew" ]; then
		if answer=$(curl -fsS -X POST -H "X-Agent-Token: $AGENT_TOKEN" -H 'Content-Type: application/json' \
			-d "{\"host_public_keys\":[$(keys_json)]}" "$URL/v1/agent/host-certificates"); then
			printf '%s\n' "$answer" | write_certs && sshd_snippet && reload_sshd
		else
			ok=1
		fi
	elif [ ! -f "$SSHDIR/sshd_config.d/shardform.conf" ]; then
		sshd_snippet && reload_sshd # a join that could not write the trust files
	fi
	[ $ok -eq 0 ] || fail "refresh from $URL failed (previous files kept)"
}

# install_refresh: node refresh every minute (this script, installed as
# shardform-node): a systemd timer and service, or the cron line printed.
install_refresh() {
	cmd="$NODE refresh --root $ROOT/"
	if [ -d "$ROOT/run/systemd/system" ]; then
		mkdir -p "$ROOT/etc/systemd/system" || return 1
		printf '[Unit]\nDescription=shardform node refresh (SSH CA keys, KRL, host certificates, heartbeat)\nAfter=network-online.target\n\n[Service]\nType=oneshot\nExecStart=%s\n' "$cmd" >"$ROOT/etc/systemd/system/shardform-refresh.service.new" &&
			put "$ROOT/etc/systemd/system/shardform-refresh.service" || return 1
		printf '[Unit]\nDescription=shardform node refresh every minute\n\n[Timer]\nOnBootSec=30s\nOnUnitActiveSec=60s\nAccuracySec=5s\n\n[Install]\nWantedBy=timers.target\n' >"$ROOT/etc/systemd/system/shardform-refresh.timer.new" &&
			put "$ROOT/etc/systemd/system/shardform-refresh.timer" || return 1
		if [ "$ROOT" = "" ]; then
			systemctl daemon-reload && systemctl enable --now shardform-refresh.timer || return 1
		else
			echo "Wrote shardform-refresh.timer in $ROOT/etc/systemd/system (not enabled: --root is not /)."
		fi
	else
		echo "No systemd: add this line to /etc/crontab to refresh every minute:"
		echo "* * * * * root $cmd"
	fi
}

# install_node: this script as shardform-node, fetched from the server
# (curl | sh leaves no copy to install).
install_node() {
	mkdir -p "$ROOT/usr/local/sbin" &&
		curl -fsS -o "$NODE.new" "$URL/v1/agent/bootstrap.sh" && put "$NODE" 755
}

if [ "$MODE" = "refresh" ]; then
	refresh
	exit 0
fi

[ -n "$URL" ] || usage "--url is required"
URL="${URL%/}"
printf '%s' "$URL" | grep -Eq '^https?://[][A-Za-z0-9._~:/%@+=,-]+$' || usage "--url must be an http:// or https:// address"
[ -n "$TOKEN" ] || usage "--token is required"
case "$TOKEN" in
*[!A-Za-z0-9_-]*) usage "--token must be a registration token (shardform_reg_...)" ;;
esac
labels="" sep=""
set -f
oldifs=$IFS
IFS=,
for l in $LABELS; do
	l=$(printf '%s' "$l" | sed 's/^[[:space:]]*//; s/[[:space:]]*$//')
	[ -n "$l" ] || continue
	case "$l" in
	?*=*) labels="$labels$sep$(json_str "${l%%=*}"):$(json_str "${l#*=}")"; sep="," ;;
	*) usage "--labels: \"$l\" is not k=v" ;;
	esac
done
IFS=$oldifs
set +f
[ -n "$(host_keys)" ] || fail "no host keys in $SSHDIR (ssh_host_*_key.pub): run ssh-keygen -A"
mkdir -p "$STATE" && chmod 700 "$STATE" || fail "cannot write $STATE"

# Joined before (a re-run by cloud-init's retry loop, or by hand): refresh
# with the agent token, and make sure the refresh is installed. A refused
# agent token (the node was deleted) registers again with --token.
if [ -f "$STATE/agent.json" ] && [ -n "$(field agent_token <"$STATE/agent.json")" ]; then
	(refresh)
	case $? in
	0)
		load_state
		[ -x "$NODE" ] || install_node || fail "install shardform-node"
		install_refresh || fail "install the refresh"
		echo "Already joined as node ${NODE_NAME:-$NODE_ID}: refreshed."
		exit 0
		;;
	3) echo "shardform-node: registering again with --token" >&2 ;;
	*) exit 1 ;;
	esac
fi

# shardform-node before registering: a failure here leaves the token unspent.
install_node || fail "install shardform-node from $URL"

host=$(hostname)
body="{\"hostname\":$(json_str "$host")"
[ -n "$NAME" ] && body="$body,\"name\":$(json_str "$NAME")"
[ -n "$labels" ] && body="$body,\"labels\":{$labels}"
# The address this machine reaches the server from (ip route get), unless given.
if [ -z "$IPV4$IPV6" ] && command -v ip >/dev/null 2>&1; then
	server=$(printf '%s' "$URL" | sed 's|^[a-z]*://||; s|/.*||; s|^.*@||; s|^\[\(.*\)\].*|\1|; s|^\([^:]*\):[0-9]*$|\1|')
	case "$server" in
	*[!0-9.:a-fA-F]*) server=$(getent ahosts "$server" 2>/dev/null | awk '{print $1; exit}') ;;
	esac
	src=$(ip route get "$server" 2>/dev/null | sed -n 's/.* src \([0-9a-fA-F.:]*\).*/\1/p' | head -n 1)
	case "$src" in
	*:*) IPV6="$src" ;;
	*.*) IPV4="$src" ;;
	esac
fi
[ -n "$IPV4" ] && body="$body,\"ipv4\":$(json_str "$IPV4")"
[ -n "$IPV6" ] && body="$body,\"ipv6\":$(json_str "$IPV6")"
facts="{\"os\":$(json_str "$(os_name)"),\"kernel\":$(json_str "$(uname -r)"),\"arch\":$(json_str "$(arch)"),\"cpus\":$(cpu_count),\"memory_mib\":$(meminfo MemTotal),\"disk_gib\":$(disk_gib 2)}"
body="$body,\"host_public_keys\":[$(keys_json)],\"version\":\"bootstrap.sh\",\"facts\":$facts}"

REG="$STATE/registration.json"
code=$(umask 077 && curl -sS -o "$REG" -w '%{http_code}' -X POST -H "Authorization: Bearer $TOKEN" \
	-H 'Content-Type: application/json' -d "$body" "$URL/v1/agent/register") || { rm -f "$REG"; fail "cannot reach $URL"; }
case "$code" in
201) ;;
401) rm -f "$REG"; echo "shardform-node: the registration token was refused (used, expired or deleted)" >&2; exit 3 ;;
*) msg=$(field error <"$REG"); rm -f "$REG"; fail "register: $code $msg" ;;
esac
AGENT_TOKEN=$(field agent_token <"$REG" | head -n 1)
[ -n "$AGENT_TOKEN" ] || { rm -f "$REG"; fail "the server's answer is not a registration"; }
# The node's id, name and organization come first in the answer.
NODE_ID=$(field id <"$REG" | head -n 1)
NODE_NAME=$(field name <"$REG" | head -n 1)
ORG_ID=$(field organization_id <"$REG" | head -n 1)

# Registered: the agent token and the refresh first, so whatever fails
# from here on, the next refresh (or a re-run) finishes it.
ETAG_CA="" ETAG_KRL=""
save_state || { rm -f "$REG"; fail "save the agent token in $STATE/agent.json"; }
ok=0
install_refresh || { echo "shardform-node: install the refresh failed" >&2; ok=1; }

# The trust files from the registration answer (the user CA keys: a JSON
# string whose only escapes are newlines; the KRL: base64), with their
# ETags; fetched only when the answer lacks them.
ca=$(grep -o '"user_ca_keys":"[^"\\]*\(\\n[^"\\]*\)*"' "$REG" | head -n 1)
if [ -n "$ca" ] && [ "$ca" != '"user_ca_keys":""' ] &&
	printf '%s\n' "$ca" | sed 's/^"user_ca_keys":"//; s/"$//; s/\\n$//; s/\\n/\
/g' >"$SSHDIR/shardform_user_ca.pub.new" && put "$SSHDIR/shardform_user_ca.pub"; then
	ETAG_CA=$(etag_of user_ca <"$REG")
elif fetch /v1/agent/ssh/ca-public-key "$SSHDIR/shardform_user_ca.pub" ""; then
	ETAG_CA="$GOT_ETAG"
else
	echo "shardform-node: fetch the user CA keys failed (the refresh retries)" >&2
	ok=1
fi
krl=$(grep -o '"krl":"[A-Za-z0-9+/=]*"' "$REG" | head -n 1 | sed 's/^"krl":"//; s/"$//')
if [ -n "$krl" ] && printf '%s\n' "$krl" | base64 -d >"$SSHDIR/shardform_revoked.krl.new" 2>/dev/null &&
	put "$SSHDIR/shardform_revoked.krl"; then
	ETAG_KRL=$(etag_of krl <"$REG")
elif rm -f "$SSHDIR/shardform_revoked.krl.new" && fetch /v1/agent/ssh/krl "$SSHDIR/shardform_revoked.krl" ""; then
	ETAG_KRL="$GOT_ETAG"
else
	echo "shardform-node: fetch the KRL failed (the refresh retries)" >&2
	ok=1
fi
save_state || ok=1
write_certs <"$REG"
rm -f "$REG"
sshd_snippet || ok=1
reload_sshd
[ $ok -eq 0 ] || fail "joined as node ${NODE_NAME:-$NODE_ID}, but not all of it was done: the refresh every minute finishes it"
echo "Joined as node ${NODE_NAME:-$NODE_ID}."
