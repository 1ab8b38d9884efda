package terraform

import (
	"cmp"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/hashicorp/go-version"
)

// Config says where and how Terraform runs.
type Config struct {
	Binary string // path of the terraform binary (see FindBinary)
	// DataDir holds workspaces/<id>, the plugin cache and the CLI config.
	DataDir string
	// PluginMirror, when set, is a filesystem mirror providers are installed
	// from (no registry access).
	PluginMirror string
	// LockTimeout is how long a run waits for the state lock (default 60s).
	LockTimeout time.Duration
	// GracePeriod is how long a cancelled run may take to stop after its
	// interrupt before it is killed (default 60s).
	GracePeriod time.Duration
	// Path is the PATH of every Terraform run (the process's own, passed in
	// by the caller; default /usr/local/bin:/usr/bin:/bin).
	Path string
	// ExtraEnv is added to every run's environment (for example
	// AWS_EC2_METADATA_DISABLED), over the runner's own settings (GOGC too).
	ExtraEnv map[string]string
}

// terraformGOGC is the Go garbage collector's GOGC of every Terraform run
// (Terraform passes its environment to the providers it starts, so theirs
// too). Go's default of 100 starts collecting at a 4 MB heap, and a
// Terraform process, which initializes every backend and built-in package
// before it reads its first file, collects many times for nothing: 400
// measured 30% less CPU per process (local driver: plan 41→27 ms, version
// 33→23 ms; with the aws provider, a plan 3.3→2.5 s) for a peak RSS a few
// percent higher (53→55 MB; 542→577 MB with the aws provider), because a
// run's live heap is small next to the binaries. A heap may grow to five
// times its live size instead of twice, which a shardform request's
// configuration (one machine's resources) keeps small. ExtraEnv may set
// another GOGC.
const terraformGOGC = "400"

// Runner prepares workspaces. It is safe for concurrent use; each
// Workspace is used by one job at a time.
type Runner struct {
	cfg       Config
	version   string // the binary's version, checked once in NewRunner
	cliConfig string
	initMu    sync.Mutex // the plugin cache is not safe for concurrent init
	stats     processStats
}

// NewRunner checks the configuration and writes the CLI config file.
func NewRunner(cfg Config) (*Runner, error) {
	if cfg.Binary == "" {
		return nil, errors.New("terraform: no binary configured")
	}
	if cfg.LockTimeout == 0 {
		cfg.LockTimeout = 60 * time.Second
	}
	if cfg.GracePeriod == 0 {
		cfg.GracePeriod = 60 * time.Second
	}
	abs, err := filepath.Abs(cfg.DataDir)
	if err != nil {
		return nil, fmt.Errorf("terraform: data dir: %w", err)
	}
	cfg.DataDir = abs
	if cfg.PluginMirror != "" {
		info, err := os.Stat(cfg.PluginMirror)
		if err != nil || !info.IsDir() {
			return nil, fmt.Errorf("terraform: plugin mirror %s is not a directory", cfg.PluginMirror)
		}
	}
	r := &Runner{cfg: cfg}
	v, err := r.binaryVersion()
	if err != nil {
		return nil, err
	}
	r.version = v
	if err := os.MkdirAll(r.cacheDir(), 0o700); err != nil {
		return nil, fmt.Errorf("terraform: %w", err)
	}
	r.cliConfig = filepath.Join(cfg.DataDir, "terraform.rc")
	if err := os.WriteFile(r.cliConfig, []byte(cliConfig(cfg.PluginMirror, r.cacheDir())), 0o600); err != nil {
		return nil, fmt.Errorf("terraform: write CLI config: %w", err)
	}
	return r, nil
}

// MinVersion is the oldest Terraform the runner works with (terraform_data,
// the machine-readable UI of plan and apply).
const MinVersion = "1.4.0"

// binaryVersion asks the binary its version, once per runner (one process
// per worker process, not one per job), and checks it.
func (r *Runner) binaryVersion() (string, error) {
	bin := r.cfg.Binary
	cmd := exec.Command(bin, "version", "-json")
	start := time.Now()
	out, err := cmd.Output()
	r.stats.record("version", cmd.ProcessState, time.Since(start))
	if err != nil {
		return "", fmt.Errorf("terraform: %s version: %w", bin, err)
	}
	var v struct {
		Version string `json:"terraform_version"`
	}
	if err := json.Unmarshal(out, &v); err != nil || v.Version == "" {
		return "", fmt.Errorf("terraform: %s version -json: unexpected answer %.200q", bin, out)
	}
	got, err := version.NewVersion(v.Version)
	if err != nil {
		return "", fmt.Errorf("terraform: %s reports version %q: %w", bin, v.Version, err)
	}
	if got.LessThan(version.Must(version.NewVersion(MinVersion))) {
		return "", fmt.Errorf("terraform: %s is Terraform %s; shardform needs %s or newer", bin, v.Version, MinVersion)
	}
	return v.Version, nil
}

// Version is the Terraform version the runner runs.
func (r *Runner) Version() string { return r.version }

func (r *Runner) cacheDir() string { return filepath.Join(r.cfg.DataDir, "plugin-cache") }

// cliConfig renders the Terraform CLI configuration: the shared plugin cache
// and, with a mirror, provider installation from it alone.
func cliConfig(mirror, cache string) string {
	var b strings.Builder
	fmt.Fprintf(&b, "plugin_cache_dir = %s\n", strconv.Quote(cache))
	b.WriteString("disable_checkpoint = true\n")
	if mirror != "" {
		fmt.Fprintf(&b, "provider_installation {\n  filesystem_mirror {\n    path    = %s\n    include = [\"*/*/*\"]\n  }\n}\n", strconv.Quote(mirror))
	}
	return b.String()
}

// env is the whole environment of a Terraform run: nothing is inherited
// from the process but PATH and HOME-like basics.
func (r *Runner) env() map[string]string {
	env := map[string]string{
		"TF_CLI_CONFIG_FILE": r.cliConfig,
		"CHECKPOINT_DISABLE": "1",
		"HOME":               r.cfg.DataDir,
		"PATH":               cmp.Or(r.cfg.Path, "/usr/local/bin:/usr/bin:/bin"),
		"TF_PLUGIN_CACHE_MAY_BREAK_DEPENDENCY_LOCK_FILE": "1",
		"GOGC": terraformGOGC,
	}
	for k, v := range r.cfg.ExtraEnv {
		env[k] = v
	}
	return env
}

// lockPluginCache serializes init across the processes sharing this data
// dir (file lock) and the goroutines of this one (mutex).
func (r *Runner) lockPluginCache() (func(), error) {
	r.initMu.Lock()
	f, err := os.OpenFile(filepath.Join(r.cacheDir(), ".lock"), os.O_CREATE|os.O_RDWR, 0o600)
	if err != nil {
		r.initMu.Unlock()
		return nil, fmt.Errorf("plugin cache lock: %w", err)
	}
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX); err != nil {
		f.Close()
		r.initMu.Unlock()
		return nil, fmt.Errorf("plugin cache lock: %w", err)
	}
	return func() {
		_ = syscall.Flock(int(f.Fd()), syscall.LOCK_UN)
		f.Close()
		r.initMu.Unlock()
	}, nil
}
