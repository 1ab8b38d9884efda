package terraform

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path/filepath"
)

// Scratch runs `terraform plan` once on a throwaway configuration that has
// no backend (local state): for reading data sources, such as checking a
// cloud credential with the provider itself, without a Terraform workspace
// in the pg backend. It uses the runner's CLI configuration, plugin cache
// (links, never copies of the providers) and environment, in a temporary
// directory under the data dir that is removed afterwards. vars are passed
// in an auto-loaded var file, as Plan does. The error, if any, carries
// Terraform's own message.
func (r *Runner) Scratch(ctx context.Context, config []byte, vars map[string]string, logs io.Writer) error {
	if !json.Valid(config) {
		return fmt.Errorf("terraform scratch: configuration is not valid JSON")
	}
	parent := filepath.Join(r.cfg.DataDir, "scratch")
	if err := os.MkdirAll(parent, 0o700); err != nil {
		return fmt.Errorf("terraform scratch: %w", err)
	}
	dir, err := os.MkdirTemp(parent, "run-")
	if err != nil {
		return fmt.Errorf("terraform scratch: %w", err)
	}
	defer os.RemoveAll(dir)
	if err := os.WriteFile(filepath.Join(dir, ConfigFile), config, 0o600); err != nil {
		return fmt.Errorf("terraform scratch: write config: %w", err)
	}
	if logs == nil {
		logs = io.Discard
	}
	w := &Workspace{Name: filepath.Base(dir), Dir: dir, r: r, logs: &syncWriter{w: logs}, env: envList(r.env())}
	unlock, err := r.lockPluginCache()
	if err != nil {
		return err
	}
	err = w.runPlain(ctx, "init", "-input=false", "-no-color", "-upgrade=false")
	unlock()
	if err != nil {
		return fmt.Errorf("terraform scratch init: %w", err)
	}
	cleanup, err := w.writeSecrets(vars)
	if err != nil {
		return err
	}
	defer cleanup()
	if err := w.runPlain(ctx, "plan", "-input=false", "-no-color"); err != nil {
		return fmt.Errorf("terraform scratch plan: %w", err)
	}
	return nil
}
