package providers_test

import (
	"context"
	"strings"
	"testing"

	cffake "github.com/shardform/shardform/internal/fake/cloudflare"
	"github.com/shardform/shardform/internal/fake/hcloudfake"
	"github.com/shardform/shardform/providers"
)

func TestHetznerVerifier(t *testing.T) {
	t.Parallel()
	fake := hcloudfake.New(t, hcloudfake.Options{Token: "good-token"})
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
	if fake.Requests.Load() < 2 {
		t.Errorf("the fake answered %d requests: the verifier did not call the API", fake.Requests.Load())
	}
}

func TestCloudflareVerifier(t *testing.T) {
	t.Parallel()
	fake := cffake.New(t)
	fake.AddToken("live")
	fake.AddToken("off")
	fake.SetTokenStatus("off", "disabled")
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
