package identity

import (
	"strings"
	"testing"
)

func TestPasswordHash(t *testing.T) {
	t.Parallel()
	p := PasswordParams{Memory: 1024, Time: 1, Threads: 1}
	h, err := hashPassword("correct horse battery", p)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(h, "$argon2id$v=19$m=1024,t=1,p=1$") || strings.Contains(h, "correct horse") {
		t.Fatalf("hash %q", h)
	}
	h2, _ := hashPassword("correct horse battery", p)
	if h == h2 {
		t.Fatal("two hashes of one password are equal: no salt")
	}
	tests := []struct {
		name, pw, hash string
		ok             bool
		wantErr        bool
	}{
		{"right", "correct horse battery", h, true, false},
		{"wrong", "correct horse batterY", h, false, false},
		{"other scheme", "x", "$2a$10$abcdefghijklmnopqrstuv", false, true},
		{"truncated", "x", "$argon2id$v=19$m=1024", false, true},
		{"bad salt", "x", "$argon2id$v=19$m=1024,t=1,p=1$***$abc", false, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ok, err := verifyPassword(tt.pw, tt.hash)
			if ok != tt.ok || (err != nil) != tt.wantErr {
				t.Errorf("verify = %v, %v", ok, err)
			}
		})
	}
}

func TestValidatePassword(t *testing.T) {
	t.Parallel()
	tests := []struct {
		pw string
		ok bool
	}{
		{"123456789", false},
		{"1234567890", true},
		{"ééééééééé", false}, // 9 characters, 18 bytes
		{"éééééééééé", true},
		{strings.Repeat("x", 1025), false},
	}
	for _, tt := range tests {
		if err := validatePassword("password", tt.pw); (err == nil) != tt.ok {
			t.Errorf("validatePassword(%q) = %v", tt.pw, err)
		}
	}
}
