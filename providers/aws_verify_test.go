package providers_test

import (
	"context"
	"strings"
	"testing"

	"github.com/shardform/shardform/providers"
)

func TestAWSVerifier(t *testing.T) {
	t.Parallel()
	b := setupAWS(t)
	b.fake.Allow(testAccessKey, testSecretKey)
	b.fake.Allow("AKIAREVOKED000000000", "revoked-secret")
	b.fake.Refuse("AKIAREVOKED000000000")
	v := providers.AWSVerifier{Runner: b.runner, Endpoint: b.fake.URL}
	tests := []struct {
		name    string
		secret  map[string]string
		wantErr string
	}{
		{"good key", testSecret(), ""},
		{"unknown key", map[string]string{"access_key_id": "AKIASTOLEN0000000000", "secret_access_key": "x"}, "aws: InvalidClientTokenId: The security token included in the request is invalid."},
		{"revoked key", map[string]string{"access_key_id": "AKIAREVOKED000000000", "secret_access_key": "revoked-secret"}, "aws: InvalidClientTokenId"},
		{"wrong secret", map[string]string{"access_key_id": testAccessKey, "secret_access_key": "not-it"}, "aws: SignatureDoesNotMatch"},
		{"missing secret", map[string]string{"access_key_id": testAccessKey}, "required"},
	}
	t.Run("keys", func(t *testing.T) {
		for _, tt := range tests {
			t.Run(tt.name, func(t *testing.T) {
				t.Parallel()
				err := v.Verify(context.Background(), tt.secret)
				t.Logf("%s: %v", tt.name, err)
				if tt.wantErr == "" && err != nil || tt.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tt.wantErr)) {
					t.Errorf("err %v, want %q", err, tt.wantErr)
				}
				if err != nil && strings.Contains(err.Error(), tt.secret["secret_access_key"]) && tt.secret["secret_access_key"] != "" {
					t.Errorf("the error shows the secret key: %v", err)
				}
			})
		}
	})
	if n := b.fake.Calls()["GetCallerIdentity"]; n < 4 {
		t.Errorf("the fake answered GetCallerIdentity %d times: the verifier did not call STS", n)
	}
	if len(b.fake.Instances()) != 0 {
		t.Error("verification created an instance")
	}
}

func TestAWSVerifierWithoutRunner(t *testing.T) {
	t.Parallel()
	if err := (providers.AWSVerifier{}).Verify(context.Background(), map[string]string{"access_key_id": "a", "secret_access_key": "b"}); err == nil {
		t.Fatal("a verifier without a runner verified a key")
	}
}
