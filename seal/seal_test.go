package seal

import (
	"bytes"
	"errors"
	"testing"
)

func TestSealOpen(t *testing.T) {
	t.Parallel()
	key := bytes.Repeat([]byte{7}, KeySize)
	s, err := New(key)
	if err != nil {
		t.Fatal(err)
	}
	other, err := New(bytes.Repeat([]byte{8}, KeySize))
	if err != nil {
		t.Fatal(err)
	}
	sealed, err := s.Seal([]byte("top secret"), "mfa:1")
	if err != nil {
		t.Fatal(err)
	}
	if bytes.Contains(sealed, []byte("top secret")) {
		t.Fatal("sealed value contains the plaintext")
	}
	tampered := bytes.Clone(sealed)
	tampered[len(tampered)-1] ^= 1

	tests := []struct {
		name    string
		sealer  *Sealer
		value   []byte
		context string
		wantErr bool
	}{
		{"same key and context", s, sealed, "mfa:1", false},
		{"other context", s, sealed, "mfa:2", true},
		{"other master key", other, sealed, "mfa:1", true},
		{"tampered", s, tampered, "mfa:1", true},
		{"truncated", s, sealed[:10], "mfa:1", true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := tt.sealer.Open(tt.value, tt.context)
			if tt.wantErr {
				if !errors.Is(err, ErrOpen) {
					t.Fatalf("Open err = %v, want ErrOpen", err)
				}
				return
			}
			if err != nil || string(got) != "top secret" {
				t.Fatalf("Open = %q, %v", got, err)
			}
		})
	}
}

func TestNewRejectsShortKey(t *testing.T) {
	t.Parallel()
	if _, err := New(make([]byte, 16)); err == nil {
		t.Fatal("New accepted a 16-byte master key")
	}
}
