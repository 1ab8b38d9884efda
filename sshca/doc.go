// Package sshca will be the SSH certificate authority: CA keys sealed at
// rest, certificate signing with golang.org/x/crypto/ssh, policy and KRLs. It
// is filled by the SSH certificate authority issue.
package sshca
