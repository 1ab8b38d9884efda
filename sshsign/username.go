package sshsign

import (
	"slices"
	"strings"
)

// isLoginName reports whether s is a portable login name, as Debian's
// adduser accepts by default: ^[a-z_][a-z0-9_-]{0,31}$.
func isLoginName(s string) bool {
	if s == "" || len(s) > 32 || s[0] == '-' || (s[0] >= '0' && s[0] <= '9') {
		return false
	}
	for _, r := range s {
		if (r < 'a' || r > 'z') && (r < '0' || r > '9') && r != '_' && r != '-' {
			return false
		}
	}
	return true
}

// reservedLoginNames are system accounts a member never gets through the
// "own username" rule: only the organization's policy can allow them.
func reservedLoginNames() []string {
	return []string{
		"root", "admin", "administrator", "daemon", "bin", "sys", "sync", "games", "man", "lp", "mail",
		"news", "uucp", "proxy", "www-data", "backup", "list", "irc", "gnats", "nobody", "sshd",
		"systemd-network", "systemd-resolve", "systemd-timesync", "messagebus", "postgres", "_apt",
		"ubuntu", "debian", "ec2-user", "centos", "fedora", "core", "shardform", "sudo", "wheel",
	}
}

// Username returns the login name a member may always request as a
// principal: the local part of their e-mail address, if it is a portable
// login name and not a system account. "" means none (the policy's
// principals only).
func Username(email string) string {
	local, _, ok := strings.Cut(strings.ToLower(email), "@")
	if !ok || !isLoginName(local) || slices.Contains(reservedLoginNames(), local) {
		return ""
	}
	return local
}
