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
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
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

// Workspace is one provision request's Terraform working directory. Its
// state lives behind Terraform's http backend (shardform's own state
// endpoints, see package tfstate), reached through the backend settings
// given to Open. A Workspace runs one command at a time.
type Workspace struct {
	Name string
	Dir  string
	// DataDir is Terraform's data dir (TF_DATA_DIR: providers, backend
	// settings), shared by every workspace of the same provider set.
	DataDir string
	r       *Runner
	logs    io.Writer
	env     []string          // the run's whole environment: the runner's and the backend's
	backend map[string]string // the http backend's settings (TF_HTTP_*): where the state is read
	// outputs are the last Apply's outputs, when it reported all of them.
	outputs map[string]json.RawMessage
	// force, when it ends, kills the running command at once (ForceOn).
	force context.Context
}

// ForceOn makes the end of ctx kill the workspace's running command at
// once, without the interrupt and grace period a cancelled command gets
// (a forced cancel). Call it before running commands.
func (w *Workspace) ForceOn(ctx context.Context) { w.force = ctx }

// Open writes config (Terraform JSON, with `backend "http" {}`) into the
// workspace directory and runs init unless the directory was initialized
// for the same configuration. backend is the http backend's settings for
// this run (tfstate.BackendEnv: address and a run credential), given to
// Terraform in its environment only. Output of every command goes to logs.
func (r *Runner) Open(ctx context.Context, name string, config []byte, logs io.Writer, backend map[string]string) (*Workspace, error) {
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
	if err := writeIfChanged(filepath.Join(dir, ConfigFile), config); err != nil {
		return nil, fmt.Errorf("terraform: workspace %s: write config: %w", name, err)
	}
	if logs == nil {
		logs = io.Discard
	}
	env := r.env()
	for k, v := range backend {
		env[k] = v
	}
	w := &Workspace{Name: name, Dir: dir, r: r, logs: &syncWriter{w: logs}, env: envList(env), backend: backend}
	if err := w.init(ctx, config); err != nil {
		return nil, err
	}
	return w, nil
}

// writeIfChanged writes data to path (mode 0600) unless the file holds it
// already: a run of the same request may be reading it (a plan rendered
// while an apply runs), and a rewrite would show it an empty file.
func writeIfChanged(path string, data []byte) error {
	if old, err := os.ReadFile(path); err == nil && bytes.Equal(old, data) {
		return nil
	}
	f, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".*")
	if err != nil {
		return err
	}
	_, err = f.Write(data)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(f.Name(), path) // CreateTemp made it 0600
	}
	if err != nil {
		_ = os.Remove(f.Name())
	}
	return err
}

// initStamp records, after a successful init, what it was run for: a
// later job with the same stamp skips init, which Terraform needs again
// only when the backend, providers or modules change.
const initStamp = "shardform-init"

// providerSet names what an init depends on: the configuration's terraform
// block (backend, required providers), the providers its blocks use, the
// binary and the mirror. Requests of one driver share it, so they share one
// init (its providers and lock file): a request costs no init of its own.
func (r *Runner) providerSet(config []byte) (string, error) {
	var cfg map[string]json.RawMessage
	if err := json.Unmarshal(config, &cfg); err != nil {
		return "", fmt.Errorf("terraform: configuration: %w", err)
	}
	used := map[string]bool{}
	for _, block := range []string{"provider", "resource", "data"} {
		var m map[string]json.RawMessage
		if len(cfg[block]) > 0 {
			if err := json.Unmarshal(cfg[block], &m); err != nil {
				return "", fmt.Errorf("terraform: configuration: %s: %w", block, err)
			}
		}
		for k := range m {
			name, _, _ := strings.Cut(k, "_")
			used[name] = true
		}
	}
	names := make([]string, 0, len(used))
	for k := range used {
		names = append(names, k)
	}
	slices.Sort(names)
	h := sha256.New()
	h.Write(cfg["terraform"])
	fmt.Fprintf(h, "\x00%s\x00%s\x00%s", strings.Join(names, ","), r.cfg.Binary, r.cfg.PluginMirror)
	return hex.EncodeToString(h.Sum(nil))[:16], nil
}

// sharedInit makes sure the provider set's shared directory is
// initialized (once per runner and provider set, under the plugin cache
// lock) and returns its data dir (TF_DATA_DIR) and dependency lock file.
func (w *Workspace) sharedInit(ctx context.Context, config []byte) (dataDir, lockFile string, err error) {
	key, err := w.r.providerSet(config)
	if err != nil {
		return "", "", err
	}
	shared := filepath.Join(w.r.cfg.DataDir, "init", key)
	dataDir, lockFile = filepath.Join(shared, ".terraform"), filepath.Join(shared, ".terraform.lock.hcl")
	stamp := filepath.Join(shared, initStamp)
	if b, err := os.ReadFile(stamp); err == nil && string(b) == key {
		return dataDir, lockFile, nil
	}
	unlock, err := w.r.lockPluginCache()
	if err != nil {
		return "", "", err
	}
	defer unlock()
	if b, err := os.ReadFile(stamp); err == nil && string(b) == key { // another job did it meanwhile
		return dataDir, lockFile, nil
	}
	if err := os.MkdirAll(shared, 0o700); err != nil {
		return "", "", fmt.Errorf("terraform init: %w", err)
	}
	if err := os.WriteFile(filepath.Join(shared, ConfigFile), config, 0o600); err != nil {
		return "", "", fmt.Errorf("terraform init: %w", err)
	}
	init := &Workspace{Name: "init-" + key, Dir: shared, r: w.r, logs: w.logs, env: w.env}
	if err := init.runPlain(ctx, "init", "-input=false", "-no-color", "-upgrade=false", "-reconfigure"); err != nil {
		return "", "", fmt.Errorf("terraform init: %w", err)
	}
	if err := os.WriteFile(stamp, []byte(key), 0o600); err != nil {
		return "", "", fmt.Errorf("terraform init: %w", err)
	}
	return dataDir, lockFile, nil
}

// init points the workspace at its provider set's shared init: Terraform
// reads providers and backend settings from TF_DATA_DIR there, and the
// dependency lock file is copied beside the configuration.
func (w *Workspace) init(ctx context.Context, config []byte) error {
	dataDir, lockFile, err := w.sharedInit(ctx, config)
	if err != nil {
		return err
	}
	lock, err := os.ReadFile(lockFile)
	switch {
	case err == nil:
		if err := writeIfChanged(filepath.Join(w.Dir, ".terraform.lock.hcl"), lock); err != nil {
			return fmt.Errorf("terraform init %s: %w", w.Name, err)
		}
	case !os.IsNotExist(err): // no providers to lock (built-ins only): no file
		return fmt.Errorf("terraform init %s: %w", w.Name, err)
	}
	w.DataDir = dataDir
	w.env = append(w.env, "TF_DATA_DIR="+dataDir)
	return nil
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

// ResourceChange is one resource's planned action: create, update,
// delete, replace, read or no-op (forget, move, import), as the plan's
// stream reports it; Before and After are its values with sensitive ones
// masked, once the plan has been rendered (ShowPlan), which lists the
// no-op changes the stream leaves out too.
type ResourceChange struct {
	Address string          `json:"address"`
	Type    string          `json:"type,omitempty"`
	Action  string          `json:"action"`
	Before  json.RawMessage `json:"before,omitempty"`
	After   json.RawMessage `json:"after,omitempty"`
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
// last Apply reported or, when it reported none or withheld a sensitive
// value (the apply stream never carries one), the outputs of the state
// the apply just wrote, read from the http backend with the run's own
// credential, as Terraform reads it: no Terraform process.
func (w *Workspace) Outputs(ctx context.Context) (map[string]json.RawMessage, error) {
	if w.outputs != nil {
		return w.outputs, nil
	}
	state, err := w.readState(ctx)
	if err != nil {
		return nil, fmt.Errorf("terraform outputs %s: %w", w.Name, err)
	}
	res := map[string]json.RawMessage{}
	if len(state) == 0 {
		return res, nil // no state yet: no outputs
	}
	var st struct {
		Outputs map[string]struct {
			Value json.RawMessage `json:"value"`
		} `json:"outputs"`
	}
	if err := json.Unmarshal(state, &st); err != nil {
		return nil, fmt.Errorf("terraform outputs %s: state: %w", w.Name, err)
	}
	for k, v := range st.Outputs {
		res[k] = v.Value
	}
	return res, nil
}

// readState GETs the workspace's latest state from its http backend
// (TF_HTTP_ADDRESS, with TF_HTTP_USERNAME and TF_HTTP_PASSWORD); nil when
// there is none yet (204).
func (w *Workspace) readState(ctx context.Context) ([]byte, error) {
	addr := w.backend["TF_HTTP_ADDRESS"]
	if addr == "" {
		return nil, errors.New("no state backend to read the state from")
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, addr, nil)
	if err != nil {
		return nil, fmt.Errorf("read state: %w", err)
	}
	if u := w.backend["TF_HTTP_USERNAME"]; u != "" || w.backend["TF_HTTP_PASSWORD"] != "" {
		req.SetBasicAuth(u, w.backend["TF_HTTP_PASSWORD"])
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return nil, fmt.Errorf("read state: %w", err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, maxStateRead+1))
	if err != nil {
		return nil, fmt.Errorf("read state: %w", err)
	}
	switch {
	case resp.StatusCode == http.StatusNoContent:
		return nil, nil
	case resp.StatusCode != http.StatusOK:
		return nil, fmt.Errorf("read state: the backend answered %s: %.200s", resp.Status, body)
	case len(body) > maxStateRead:
		return nil, fmt.Errorf("read state: larger than %d bytes", maxStateRead)
	}
	return body, nil
}

// maxStateRead bounds the state Outputs reads (a request's state is one
// machine's resources: kilobytes).
const maxStateRead = 64 << 20

// Remove deletes the workspace directory (after a destroy; state lives in
// shardform's state store, so nothing is lost).
func (w *Workspace) Remove() error {
	if err := os.RemoveAll(w.Dir); err != nil {
		return fmt.Errorf("terraform: remove workspace %s: %w", w.Name, err)
	}
	return nil
}

// Drift is what a refresh-only plan found: whether the real
// infrastructure differs from the state, the resources that drifted (from
// the plan's stream) and, when some did, the plan file (for ShowPlan).
type Drift struct {
	Drifted   bool
	Resources []ResourceChange
	Plan      []byte
}

// Refresh runs `terraform plan -refresh-only -detailed-exitcode -json`:
// Terraform reads every resource from its provider and compares it with
// the state; exit code 2 means something drifted. Nothing is written.
func (w *Workspace) Refresh(ctx context.Context, vars map[string]string) (Drift, error) {
	cleanup, err := w.writeSecrets(vars)
	if err != nil {
		return Drift{}, err
	}
	defer cleanup()
	path := filepath.Join(w.Dir, planFile)
	defer os.Remove(path)
	res, err := w.runJSON(ctx, "plan", "-refresh-only", "-detailed-exitcode", "-json", "-input=false", "-no-color",
		"-lock-timeout="+w.lockTimeout(), "-out="+planFile)
	code, exited := ExitCode(err)
	if err != nil && !(exited && code == 2 && len(res.errors) == 0 && ctx.Err() == nil) {
		return Drift{}, fmt.Errorf("terraform plan -refresh-only %s: %w", w.Name, err)
	}
	d := Drift{Drifted: err != nil, Resources: res.drift}
	if d.Resources == nil {
		d.Resources = []ResourceChange{}
	}
	if d.Drifted {
		if d.Plan, err = os.ReadFile(path); err != nil {
			return Drift{}, fmt.Errorf("terraform plan -refresh-only %s: read plan: %w", w.Name, err)
		}
	}
	return d, nil
}

// ShowPlan renders a plan file made by Plan or Refresh with `terraform
// show -json` and masks its sensitive values (MaskPlan). The unmasked
// output never reaches the logs.
func (w *Workspace) ShowPlan(ctx context.Context, plan []byte) (RenderedPlan, error) {
	const name = "shardform-show.tfplan"
	path := filepath.Join(w.Dir, name)
	if err := os.WriteFile(path, plan, 0o600); err != nil {
		return RenderedPlan{}, fmt.Errorf("terraform show %s: write plan: %w", w.Name, err)
	}
	defer os.Remove(path)
	var buf bytes.Buffer
	if err := w.runTo(ctx, &buf, "show", "-json", "-no-color", name); err != nil {
		return RenderedPlan{}, fmt.Errorf("terraform show %s: %w", w.Name, err)
	}
	return MaskPlan(buf.Bytes())
}
