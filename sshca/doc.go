// Package sshca is the domain core of shardform's SSH certificate authority:
// CA keys generated here and sealed at rest under the master key (Vault,
// CAKey), the per-organization signing Policy, the Authority that validates a
// Request, applies the policy and signs an OpenSSH user certificate through a
// crypto.Signer (so a KMS or HSM can replace the sealed key later) or, with
// Authority.SignHost, a host certificate for a HostRequest, and the KRL writer
// producing OpenSSH's binary Key Revocation List.
//
// The package has no database, HTTP or queue code. Signing follows the order
// of step-ca: validate the request, apply the policy, build the certificate,
// sign it, and return a Certificate record for the caller to store before it
// hands the certificate out. Bad input is reported as *domain.ValidationError
// (fields public_key, principals, validity_hours, source_address) and a
// principal the policy forbids as domain.ErrForbidden; the API maps them to
// 400 and 403.
package sshca
