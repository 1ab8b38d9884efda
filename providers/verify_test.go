package providers_test

import (
	"context"
	"strings"
	"testing"

	"github.com/shardform/shardform/providers"
	"github.com/shardform/shardform/providers/providertest"
)

func TestHetznerVerifier(t *testing.T) {
	t.Parallel()
	fake := providertest.Hetzner(t, "good-token")
	v := providers.HetznerVerifier{Endpoint: fake.URL}
	tests := []struct {
		token   string
		wantErr string
	}{
		{"good-token", ""},
		{"stolen-token", "unable to authenticate"},
	}
	for _, tt := range tests {
		err := v.Verify(context.Background(), map[string]string{"token": tt.token})
		t.Logf("%s: %v", tt.token, err)
		if tt.wantErr == "" && err != nil || tt.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tt.wantErr)) {
			t.Errorf("token %s: err %v, want %q", tt.token, err, tt.wantErr)
		}
	}
	if fake.Requests() < 2 {
		t.Errorf("the fake answered %d requests: the verifier did not call the API", fake.Requests())
	}
}

func TestCloudflareVerifier(t *testing.T) {
	t.Parallel()
	fake := providertest.Cloudflare(t, map[string]string{"live": "active", "off": "disabled"})
	v := providers.CloudflareVerifier{BaseURL: fake.URL}
	tests := []struct {
		token   string
		wantErr string
	}{
		{"live", ""},
		{"off", "disabled"},
		{"unknown", "Invalid API Token"},
	}
	for _, tt := range tests {
		err := v.Verify(context.Background(), map[string]string{"api_token": tt.token})
		t.Logf("%s: %v", tt.token, err)
		if tt.wantErr == "" && err != nil || tt.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tt.wantErr)) {
			t.Errorf("token %s: err %v, want %q", tt.token, err, tt.wantErr)
		}
	}
}
