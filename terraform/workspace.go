package terraform

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"time"
)

// ErrStalePlan: the state changed since the plan was made.
var ErrStalePlan = errors.New("plan is stale: plan again")

// ConfigFile is the generated configuration's file name (Terraform JSON).
const ConfigFile = "main.tf.json"

const (
	planFile    = "shardform.tfplan"
	secretsFile = "shardform-secrets.auto.tfvars.json"
)

var validWorkspace = regexp.MustCompile(`^[a-zA-Z0-9_-]{1,90}$`)

// Workspace is one provision request's Terraform working directory, bound
// to the Terraform workspace of the same name in the pg backend. A
// Workspace runs one command at a time.
type Workspace struct {
	Name string
	Dir  string
	r    *Runner
	logs io.Writer
	// outputs are the last Apply's outputs, when it reported all of them.
	outputs map[string]json.RawMessage
}

// Open writes config (Terraform JSON) into the workspace directory, runs
// init against the pg backend and selects (creating it if needed) the
// Terraform workspace name. Output of every command goes to logs.
func (r *Runner) Open(ctx context.Context, name string, config []byte, logs io.Writer) (*Workspace, error) {
	if !validWorkspace.MatchString(name) {
		return nil, fmt.Errorf("terraform: invalid workspace name %q", name)
	}
	if !json.Valid(config) {
		return nil, fmt.Errorf("terraform: workspace %s: configuration is not valid JSON", name)
	}
	dir := filepath.Join(r.cfg.DataDir, "workspaces", name)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("terraform: workspace %s: %w", name, err)
	}
	if err := os.WriteFile(filepath.Join(dir, ConfigFile), config, 0o600); err != nil {
		return nil, fmt.Errorf("terraform: workspace %s: write config: %w", name, err)
	}
	if logs == nil {
		logs = io.Discard
	}
	w := &Workspace{Name: name, Dir: dir, r: r, logs: logs}
	if err := w.init(ctx, config); err != nil {
		return nil, err
	}
	if err := w.selectWorkspace(ctx); err != nil {
		return nil, err
	}
	return w, nil
}

// initStamp records, after a successful init, what it was run for (the
// configuration, the binary and the provider mirror): a later job on the
// same machine with the same stamp skips init, which Terraform needs again
// only when the backend, providers or modules change.
const initStamp = ".terraform/shardform-init"

func (w *Workspace) initKey(config []byte) string {
	h := sha256.New()
	h.Write(config)
	fmt.Fprintf(h, "\x00%s\x00%s", w.r.cfg.Binary, w.r.cfg.PluginMirror)
	return hex.EncodeToString(h.Sum(nil))
}

func (w *Workspace) init(ctx context.Context, config []byte) error {
	key := w.initKey(config)
	stamp := filepath.Join(w.Dir, initStamp)
	if b, err := os.ReadFile(stamp); err == nil && string(b) == key {
		return nil
	}
	_ = os.Remove(stamp)
	// The first init creates the backend's schema and table; concurrent
	// first inits collide in Postgres' catalog, so they take the global lock.
	ready, err := w.r.stateTableExists(ctx)
	if err != nil {
		return err
	}
	if !ready {
		unlockGlobal, err := w.r.lockWorkspaceCreation(ctx)
		if err != nil {
			return err
		}
		defer unlockGlobal()
	}
	unlock, err := w.r.lockPluginCache()
	if err != nil {
		return err
	}
	defer unlock()
	if err := w.runPlain(ctx, "init", "-input=false", "-no-color", "-upgrade=false", "-reconfigure"); err != nil {
		return fmt.Errorf("terraform init %s: %w", w.Name, err)
	}
	if err := os.WriteFile(stamp, []byte(key), 0o600); err != nil {
		return fmt.Errorf("terraform init %s: %w", w.Name, err)
	}
	return nil
}

func (w *Workspace) selectWorkspace(ctx context.Context) error {
	// Terraform keeps the selected workspace in .terraform/environment:
	// reading it saves a process per job.
	if current, err := os.ReadFile(filepath.Join(w.Dir, ".terraform", "environment")); err == nil && strings.TrimSpace(string(current)) == w.Name {
		return nil
	}
	exists, err := w.r.workspaceExists(ctx, w.Name)
	if err != nil {
		return err
	}
	if exists {
		if err := w.runPlain(ctx, "workspace", "select", "-no-color", w.Name); err != nil {
			return fmt.Errorf("terraform workspace select %s: %w", w.Name, err)
		}
		return nil
	}
	unlock, err := w.r.lockWorkspaceCreation(ctx)
	if err != nil {
		return err
	}
	defer unlock()
	// Another process may have created it while we waited.
	if exists, err = w.r.workspaceExists(ctx, w.Name); err != nil {
		return err
	}
	if exists {
		if err := w.runPlain(ctx, "workspace", "select", "-no-color", w.Name); err != nil {
			return fmt.Errorf("terraform workspace select %s: %w", w.Name, err)
		}
		return nil
	}
	// The pg backend takes the same global advisory lock for creating a
	// workspace and for locking any workspace's state, and `workspace new`
	// fails at once instead of waiting: another request's plan or apply
	// holds it for a moment, so try again until the lock timeout.
	deadline := time.Now().Add(w.r.cfg.LockTimeout)
	for pause := 50 * time.Millisecond; ; pause = min(2*pause, time.Second) {
		err := w.runPlain(ctx, "workspace", "new", "-no-color", "-lock-timeout="+w.lockTimeout(), w.Name)
		if err == nil {
			return nil
		}
		if !strings.Contains(err.Error(), "Already locked for workspace creation") || time.Now().Add(pause).After(deadline) {
			return fmt.Errorf("terraform workspace new %s: %w", w.Name, err)
		}
		fmt.Fprintf(w.logs, "[shardform] the state backend's workspace lock is busy: trying again in %s\n", pause)
		select {
		case <-ctx.Done():
			return fmt.Errorf("terraform workspace new %s: %w", w.Name, ctx.Err())
		case <-time.After(pause):
		}
	}
}

func (w *Workspace) lockTimeout() string {
	return fmt.Sprintf("%ds", int(w.r.cfg.LockTimeout.Seconds()))
}

// writeSecrets puts sensitive variable values in an auto-loaded var file
// (mode 0600) for one command, never on the command line or in the
// configuration; the returned func removes it.
func (w *Workspace) writeSecrets(vars map[string]string) (func(), error) {
	path := filepath.Join(w.Dir, secretsFile)
	if len(vars) == 0 {
		_ = os.Remove(path)
		return func() {}, nil
	}
	b, err := json.Marshal(vars)
	if err != nil {
		return nil, fmt.Errorf("terraform: variables: %w", err)
	}
	if err := os.WriteFile(path, b, 0o600); err != nil {
		return nil, fmt.Errorf("terraform: variables: %w", err)
	}
	return func() { _ = os.Remove(path) }, nil
}

// Plan is a saved plan and what it would do.
type Plan struct {
	File    []byte // the binary plan file, to be applied later (anywhere)
	Summary PlanSummary
}

// PlanSummary counts a plan's resource changes.
type PlanSummary struct {
	Add       int              `json:"add"`
	Change    int              `json:"change"`
	Destroy   int              `json:"destroy"`
	Resources []ResourceChange `json:"resources"`
}

// ResourceChange is one resource's planned action: create, update, delete or replace.
type ResourceChange struct {
	Address string `json:"address"`
	Action  string `json:"action"`
}

// Plan runs `terraform plan -json -out` (with -destroy when destroy is
// set) and returns the plan file and its summary, read from the plan's own
// stream (planned_change and change_summary messages): one process.
func (w *Workspace) Plan(ctx context.Context, vars map[string]string, destroy bool) (Plan, error) {
	cleanup, err := w.writeSecrets(vars)
	if err != nil {
		return Plan{}, err
	}
	defer cleanup()
	path := filepath.Join(w.Dir, planFile)
	defer os.Remove(path)
	args := []string{"plan", "-json", "-input=false", "-no-color", "-lock-timeout=" + w.lockTimeout(), "-out=" + planFile}
	if destroy {
		args = append(args, "-destroy")
	}
	res, err := w.runJSON(ctx, args...)
	if err != nil {
		return Plan{}, fmt.Errorf("terraform plan %s: %w", w.Name, err)
	}
	if !res.sawSummary {
		return Plan{}, fmt.Errorf("terraform plan %s: the plan's output had no change summary", w.Name)
	}
	b, err := os.ReadFile(path)
	if err != nil {
		return Plan{}, fmt.Errorf("terraform plan %s: read plan: %w", w.Name, err)
	}
	return Plan{File: b, Summary: res.summary}, nil
}

// Apply applies a plan made by Plan (possibly on another machine). A plan
// made against older state fails with ErrStalePlan. The outputs the apply
// reports are kept for Outputs.
func (w *Workspace) Apply(ctx context.Context, plan []byte, vars map[string]string) error {
	cleanup, err := w.writeSecrets(vars)
	if err != nil {
		return err
	}
	defer cleanup()
	path := filepath.Join(w.Dir, planFile)
	if err := os.WriteFile(path, plan, 0o600); err != nil {
		return fmt.Errorf("terraform apply %s: write plan: %w", w.Name, err)
	}
	defer os.Remove(path)
	w.outputs = nil
	res, err := w.runJSON(ctx, "apply", "-json", "-input=false", "-no-color", "-lock-timeout="+w.lockTimeout(), planFile)
	if err != nil {
		if strings.Contains(err.Error(), "Saved plan is stale") {
			return fmt.Errorf("terraform apply %s: %w", w.Name, ErrStalePlan)
		}
		return fmt.Errorf("terraform apply %s: %w", w.Name, err)
	}
	if res.sawOutputs && !res.sensitive {
		w.outputs = res.outputs
	}
	return nil
}

// Destroy destroys every resource of the workspace (`terraform apply
// -destroy -auto-approve`).
func (w *Workspace) Destroy(ctx context.Context, vars map[string]string) error {
	cleanup, err := w.writeSecrets(vars)
	if err != nil {
		return err
	}
	defer cleanup()
	if _, err := w.runJSON(ctx, "apply", "-destroy", "-auto-approve", "-json", "-input=false", "-no-color", "-lock-timeout="+w.lockTimeout()); err != nil {
		return fmt.Errorf("terraform destroy %s: %w", w.Name, err)
	}
	return nil
}

// Outputs returns the root module's outputs as raw JSON values: those the
// last Apply reported, or, when it reported none or withheld a sensitive
// value, `terraform output -json` (the only way to read a sensitive one).
func (w *Workspace) Outputs(ctx context.Context) (map[string]json.RawMessage, error) {
	if w.outputs != nil {
		return w.outputs, nil
	}
	var buf bytes.Buffer
	if err := w.runTo(ctx, &buf, "output", "-json", "-no-color"); err != nil {
		return nil, fmt.Errorf("terraform output %s: %w", w.Name, err)
	}
	var outs map[string]struct {
		Value json.RawMessage `json:"value"`
	}
	if err := json.Unmarshal(buf.Bytes(), &outs); err != nil {
		return nil, fmt.Errorf("terraform output %s: %w", w.Name, err)
	}
	res := make(map[string]json.RawMessage, len(outs))
	for k, v := range outs {
		res[k] = v.Value
	}
	return res, nil
}

// Remove deletes the workspace directory (after a destroy; state lives in
// Postgres, so nothing is lost).
func (w *Workspace) Remove() error {
	if err := os.RemoveAll(w.Dir); err != nil {
		return fmt.Errorf("terraform: remove workspace %s: %w", w.Name, err)
	}
	return nil
}
