package terraform_test

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/shardform/shardform/terraform"
)

func TestScratch(t *testing.T) {
	t.Parallel()
	b := setup(t)
	dataDir := t.TempDir()
	r, err := terraform.NewRunner(terraform.Config{Binary: b.bin, DataDir: dataDir, GracePeriod: 5 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name    string
		config  string
		vars    map[string]string
		wantErr string
	}{
		{"reads and passes variables", `{"variable":{"token":{"type":"string","sensitive":true}},"output":{"len":{"value":"${length(var.token)}","sensitive":true}}}`, map[string]string{"token": "s3cr3t"}, ""},
		{"missing variable", `{"variable":{"token":{"type":"string"}},"output":{"x":{"value":"${var.token}"}}}`, nil, "No value for required variable"},
		{"failing check", `{"output":{"x":{"value":"${file(\"/nonexistent/shardform\")}"}}}`, nil, "no file exists"},
		{"not JSON", `resource {`, nil, "not valid JSON"},
	}
	for _, tt := range tests {
		var logs bytes.Buffer
		err := r.Scratch(context.Background(), []byte(tt.config), tt.vars, &logs)
		if tt.wantErr == "" && err != nil || tt.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tt.wantErr)) {
			t.Errorf("%s: err %v, want %q\n%s", tt.name, err, tt.wantErr, logs.String())
		}
		if strings.Contains(logs.String(), "s3cr3t") {
			t.Errorf("%s: a sensitive variable is in the output", tt.name)
		}
	}
	left, err := os.ReadDir(filepath.Join(dataDir, "scratch"))
	if err != nil || len(left) != 0 {
		t.Errorf("scratch directories left behind: %v, %v", left, err)
	}
}
