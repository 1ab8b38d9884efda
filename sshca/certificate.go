package sshca

import "time"

// Certificate records one issued certificate: what the store keeps and the
// API returns. Record it before handing AuthorizedKey out.
type Certificate struct {
	// AuthorizedKey is the certificate in authorized_keys form without a
	// trailing newline: the content of id_ed25519-cert.pub.
	AuthorizedKey string
	Serial        uint64
	// KeyID names user, organization and serial; sshd logs it on login.
	KeyID       string
	Principals  []string
	ValidAfter  time.Time
	ValidBefore time.Time
	// Extensions granted, sorted.
	Extensions []string
	// SourceAddress is the source-address critical option, "" for none.
	SourceAddress string
	// KeyType is the user key's OpenSSH type, e.g. "ssh-ed25519".
	KeyType string
	// KeyFingerprint is the SHA256 fingerprint of the user's public key.
	KeyFingerprint string
	// CAFingerprint is the SHA256 fingerprint of the signing CA key.
	CAFingerprint string
}
