package sshca

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"slices"
	"time"

	"golang.org/x/crypto/ssh"
)

// KRL format constants from OpenSSH's PROTOCOL.krl.
const (
	krlMagic         = "SSHKRL\n\x00"
	krlFormatVersion = 1

	krlSectionCertificates = 1

	krlCertSerialList  = 0x20
	krlCertSerialRange = 0x21

	// A run of at least this many consecutive serials is written as one
	// range (16 bytes) instead of list entries (8 bytes each).
	krlMinRange = 3
)

// KRL is an OpenSSH Key Revocation List revoking certificates by serial
// number per CA key: the file sshd's RevokedKeys option and ssh-keygen -Q
// read. Its binary form is written by MarshalBinary.
type KRL struct {
	// Version must increase each time the list changes.
	Version uint64
	// GeneratedAt is when the list was made (second precision).
	GeneratedAt time.Time
	// Comment is free text, shown by ssh-keygen -Ql.
	Comment string
	// Revoked lists the revoked serials of each CA key.
	Revoked []RevokedSerials
}

// RevokedSerials are the revoked certificate serials of one CA key.
type RevokedSerials struct {
	CA      ssh.PublicKey
	Serials []uint64
}

// MarshalBinary encodes the KRL in OpenSSH's binary format: the header,
// then one KRL_SECTION_CERTIFICATES per CA key holding its serials sorted
// and without duplicates, runs of consecutive serials as
// KRL_SECTION_CERT_SERIAL_RANGE and the others as KRL_SECTION_CERT_SERIAL_LIST.
// Entries for the same CA key are merged; CA keys without serials are left
// out. Serial 0 is an error: OpenSSH refuses it in a KRL.
func (k *KRL) MarshalBinary() ([]byte, error) {
	if k.GeneratedAt.Before(time.Unix(0, 0)) {
		return nil, errors.New("marshal KRL: generated date before 1970")
	}
	sections, err := k.sections()
	if err != nil {
		return nil, fmt.Errorf("marshal KRL: %w", err)
	}

	b := []byte(krlMagic)
	b = binary.BigEndian.AppendUint32(b, krlFormatVersion)
	b = binary.BigEndian.AppendUint64(b, k.Version)
	b = binary.BigEndian.AppendUint64(b, uint64(k.GeneratedAt.Unix()))
	b = binary.BigEndian.AppendUint64(b, 0) // flags: none defined
	b = appendString(b, nil)                // reserved
	b = appendString(b, []byte(k.Comment))
	for _, s := range sections {
		b = append(b, krlSectionCertificates)
		b = appendString(b, s.encode())
	}
	return b, nil
}

// krlCASection is the revoked serials of one CA key, sorted and unique.
type krlCASection struct {
	caBlob  []byte
	serials []uint64
}

// sections merges the entries per CA key, in order of first appearance.
func (k *KRL) sections() ([]*krlCASection, error) {
	var out []*krlCASection
	for i, r := range k.Revoked {
		if r.CA == nil {
			return nil, fmt.Errorf("revoked entry %d has no CA key", i)
		}
		if len(r.Serials) == 0 {
			continue
		}
		if slices.Contains(r.Serials, 0) {
			return nil, fmt.Errorf("CA %s: serial 0 cannot be revoked", ssh.FingerprintSHA256(r.CA))
		}
		blob := r.CA.Marshal()
		idx := slices.IndexFunc(out, func(s *krlCASection) bool { return bytes.Equal(s.caBlob, blob) })
		if idx < 0 {
			out = append(out, &krlCASection{caBlob: blob})
			idx = len(out) - 1
		}
		out[idx].serials = append(out[idx].serials, r.Serials...)
	}
	for _, s := range out {
		slices.Sort(s.serials)
		s.serials = slices.Compact(s.serials)
	}
	return out, nil
}

// encode writes the section data: CA key, reserved, then the serial
// subsections in ascending order.
func (s *krlCASection) encode() []byte {
	b := appendString(nil, s.caBlob)
	b = appendString(b, nil) // reserved
	var list []byte
	flush := func() {
		if len(list) > 0 {
			b = append(b, krlCertSerialList)
			b = appendString(b, list)
			list = list[:0]
		}
	}
	serials := s.serials
	for len(serials) > 0 {
		run := 1
		for run < len(serials) && serials[run] == serials[run-1]+1 {
			run++
		}
		if run >= krlMinRange {
			flush()
			var r []byte
			r = binary.BigEndian.AppendUint64(r, serials[0])
			r = binary.BigEndian.AppendUint64(r, serials[run-1])
			b = append(b, krlCertSerialRange)
			b = appendString(b, r)
		} else {
			for _, serial := range serials[:run] {
				list = binary.BigEndian.AppendUint64(list, serial)
			}
		}
		serials = serials[run:]
	}
	flush()
	return b
}

// appendString appends an SSH wire-format string (uint32 length, bytes).
func appendString(b, s []byte) []byte {
	b = binary.BigEndian.AppendUint32(b, uint32(len(s)))
	return append(b, s...)
}

// krlGeneratedDateAt is the offset of the header's generated_date: after
// the magic (8 bytes), format_version (4) and krl_version (8).
const krlGeneratedDateAt = 8 + 4 + 8

// KRLIdentity is the part of a marshalled KRL that changes only when the
// list does: the KRL with its generated date zeroed (a copy). Two KRLs of
// the same revocations made at different times have the same identity, so
// a node that has the list is not sent it again.
func KRLIdentity(krl []byte) []byte {
	out := bytes.Clone(krl)
	if len(out) >= krlGeneratedDateAt+8 {
		clear(out[krlGeneratedDateAt : krlGeneratedDateAt+8])
	}
	return out
}
