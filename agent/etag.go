package agent

import (
	"context"
	"crypto/sha256"
	"encoding/hex"

	"github.com/shardform/shardform/sshca"
)

// ETag is a trust file's entity tag (quoted): of the KRL's list alone for
// the KRL (it carries the time it was made), of the bytes otherwise. The
// file endpoints send it, and heartbeats answer the current ones, so an
// unchanged node refresh is one request.
func ETag(body []byte, krl bool) string {
	if krl {
		body = sshca.KRLIdentity(body)
	}
	sum := sha256.Sum256(body)
	return `"` + hex.EncodeToString(sum[:16]) + `"`
}

// trustETags are the current ETags of the agent's trust files.
func (s *Service) trustETags(ctx context.Context, a Agent) (map[string]string, error) {
	ca, err := s.UserCAKeys(ctx, a)
	if err != nil {
		return nil, err
	}
	krl, err := s.KRL(ctx, a)
	if err != nil {
		return nil, err
	}
	return map[string]string{"user_ca": ETag(ca, false), "krl": ETag(krl, true)}, nil
}
