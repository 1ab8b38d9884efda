package main

import (
	"bufio"
	"bytes"
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/spf13/cobra"
)

// errRefused is a token the server answered 401: retrying will not help.
type errRefused struct{ msg string }

func (e *errRefused) Error() string { return e.msg }

// Paths on the node, relative to --root.
const (
	nodeStatePath  = "etc/shardform/agent.json"
	nodeUserCAPath = "etc/ssh/shardform_user_ca.pub"
	nodeKRLPath    = "etc/ssh/shardform_revoked.krl"
	nodeSSHDConf   = "etc/ssh/sshd_config.d/shardform.conf"
	nodeSSHDir     = "etc/ssh"
	nodeSSHDPid    = "run/sshd.pid"
	nodeSystemdDir = "etc/systemd/system"
)

// nodeCmd is `shardform node join|refresh`, run as root on the node.
// --root writes under another directory (for tests). Exit 3: the server
// refused the token (refresh: the node was deleted; join again).
func (c *cli) nodeCmd() *cobra.Command {
	node := group("node", "Joins this machine to shardform and keeps its trust files fresh (run as root on the node).", "subcommand")
	node.AddCommand(c.nodeJoinCmd(), c.nodeRefreshCmd())
	return node
}

// nodeState is what join leaves for refresh (mode 0600: it holds the agent token).
type nodeState struct {
	URL            string            `json:"url"`
	NodeID         string            `json:"node_id"`
	NodeName       string            `json:"node_name"`
	OrganizationID string            `json:"organization_id"`
	AgentToken     string            `json:"agent_token"`
	HostKeys       []string          `json:"host_keys"` // public key files, under root
	ETags          map[string]string `json:"etags"`
}

func loadNodeState(root string) (nodeState, error) {
	var st nodeState
	path := filepath.Join(root, nodeStatePath)
	raw, err := os.ReadFile(path)
	if errors.Is(err, os.ErrNotExist) {
		return st, fmt.Errorf("%s not found: this machine has not joined (run shardform node join)", path)
	}
	if err != nil {
		return st, err
	}
	if err := json.Unmarshal(raw, &st); err != nil {
		return st, fmt.Errorf("read %s: %w", path, err)
	}
	if st.ETags == nil {
		st.ETags = map[string]string{}
	}
	return st, nil
}

func (st nodeState) save(root string) error {
	raw, err := json.MarshalIndent(st, "", "  ")
	if err != nil {
		return err
	}
	return writeAtomic(filepath.Join(root, nodeStatePath), append(raw, '\n'), 0o600)
}

// writeAtomic replaces path with data (a temporary file beside it, synced,
// then renamed): a reader sees the old file or the new one, never a part.
func writeAtomic(path string, data []byte, mode os.FileMode) error {
	dirMode := os.FileMode(0o755)
	if mode&0o077 == 0 {
		dirMode = 0o700
	}
	if err := os.MkdirAll(filepath.Dir(path), dirMode); err != nil {
		return err
	}
	f, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".tmp-*")
	if err != nil {
		return err
	}
	tmp := f.Name()
	defer os.Remove(tmp) // after the rename: nothing to remove
	if _, err := f.Write(data); err != nil {
		f.Close()
		return err
	}
	if err := f.Chmod(mode); err != nil {
		f.Close()
		return err
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	return os.Rename(tmp, path)
}

// agentClient talks to the server for the node.
type agentClient struct {
	base string
	http *http.Client
}

func newAgentClient(base string) *agentClient {
	return &agentClient{base: strings.TrimRight(base, "/"), http: &http.Client{Timeout: 15 * time.Second}}
}

// do sends one request; header values are set as given. A 401 is an
// *errRefused; other errors carry the server's message.
func (c *agentClient) do(ctx context.Context, method, path string, header map[string]string, body any) (*http.Response, []byte, error) {
	var rd io.Reader
	if body != nil {
		raw, err := json.Marshal(body)
		if err != nil {
			return nil, nil, err
		}
		rd = bytes.NewReader(raw)
	}
	req, err := http.NewRequestWithContext(ctx, method, c.base+path, rd)
	if err != nil {
		return nil, nil, err
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	req.Header.Set("User-Agent", "shardform-node/"+version)
	for k, v := range header {
		req.Header.Set(k, v)
	}
	resp, err := c.http.Do(req)
	if err != nil {
		return nil, nil, fmt.Errorf("%s %s: %w", method, path, err)
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(io.LimitReader(resp.Body, 16<<20))
	if err != nil {
		return nil, nil, fmt.Errorf("%s %s: %w", method, path, err)
	}
	if resp.StatusCode >= 400 {
		var e struct{ Error string }
		_ = json.Unmarshal(raw, &e)
		msg := cmp.Or(e.Error, http.StatusText(resp.StatusCode))
		if resp.StatusCode == http.StatusUnauthorized {
			return resp, raw, &errRefused{msg: fmt.Sprintf("%s %s: %s", method, path, msg)}
		}
		return resp, raw, fmt.Errorf("%s %s: %d %s", method, path, resp.StatusCode, msg)
	}
	return resp, raw, nil
}

// hostKeyFiles are the host public keys under root/etc/ssh.
func hostKeyFiles(root string) ([]string, error) {
	files, err := filepath.Glob(filepath.Join(root, nodeSSHDir, "ssh_host_*_key.pub"))
	if err != nil {
		return nil, err
	}
	if len(files) == 0 {
		return nil, fmt.Errorf("no host keys in %s (ssh_host_*_key.pub): run ssh-keygen -A", filepath.Join(root, nodeSSHDir))
	}
	return files, nil
}

func readHostKeys(files []string) ([]string, error) {
	out := make([]string, 0, len(files))
	for _, f := range files {
		raw, err := os.ReadFile(f)
		if err != nil {
			return nil, err
		}
		out = append(out, strings.TrimSpace(string(raw)))
	}
	return out, nil
}

// certPathOf is where the certificate of a host public key goes:
// ssh_host_ed25519_key.pub → ssh_host_ed25519_key-cert.pub.
func certPathOf(pubPath string) string {
	return strings.TrimSuffix(pubPath, ".pub") + "-cert.pub"
}

// hostCertificate is one signed host key as the server answers it.
type hostCertificate struct {
	PublicKey   string `json:"public_key"`
	Certificate string `json:"certificate"`
}

// writeHostCerts writes each certificate beside the key it signs.
func writeHostCerts(files []string, keys []string, certs []hostCertificate) ([]string, error) {
	var written []string
	for _, c := range certs {
		for i, k := range keys {
			if sameKey(k, c.PublicKey) {
				p := certPathOf(files[i])
				if err := writeAtomic(p, []byte(strings.TrimSpace(c.Certificate)+"\n"), 0o644); err != nil {
					return written, err
				}
				written = append(written, p)
			}
		}
	}
	return written, nil
}

// sameKey compares two authorized_keys lines by type and key, not comment.
func sameKey(a, b string) bool {
	fa, fb := strings.Fields(a), strings.Fields(b)
	return len(fa) >= 2 && len(fb) >= 2 && fa[0] == fb[0] && fa[1] == fb[1]
}

// sshdConfig is the sshd_config.d snippet: the trust files and the host
// certificates, at their paths under root.
func sshdConfig(root string, certs []string) []byte {
	var b strings.Builder
	b.WriteString("# Written by shardform node join; node refresh keeps the files current.\n")
	fmt.Fprintf(&b, "TrustedUserCAKeys %s\n", filepath.Join(root, nodeUserCAPath))
	fmt.Fprintf(&b, "RevokedKeys %s\n", filepath.Join(root, nodeKRLPath))
	for _, c := range certs {
		fmt.Fprintf(&b, "HostCertificate %s\n", c)
	}
	return []byte(b.String())
}

// reloadSSHD sends SIGHUP to the sshd of root/run/sshd.pid, if one runs:
// it re-reads its configuration and host certificates. Whether it ran.
func reloadSSHD(root string) bool {
	raw, err := os.ReadFile(filepath.Join(root, nodeSSHDPid))
	if err != nil {
		return false
	}
	pid, err := strconv.Atoi(strings.TrimSpace(string(raw)))
	if err != nil || pid <= 1 {
		return false
	}
	return syscall.Kill(pid, syscall.SIGHUP) == nil
}

// facts are the machine's, for registration.
type nodeFacts struct {
	OS        string `json:"os"`
	Kernel    string `json:"kernel"`
	Arch      string `json:"arch"`
	CPUs      int    `json:"cpus"`
	MemoryMiB int    `json:"memory_mib"`
	DiskGiB   int    `json:"disk_gib"`
}

func gatherFacts(root string) nodeFacts {
	f := nodeFacts{Arch: runtime.GOARCH, CPUs: runtime.NumCPU(), OS: osRelease(root)}
	if raw, err := os.ReadFile("/proc/sys/kernel/osrelease"); err == nil {
		f.Kernel = strings.TrimSpace(string(raw))
	}
	f.MemoryMiB = int(memInfo()["MemTotal"] / 1024)
	var sfs syscall.Statfs_t
	if syscall.Statfs(statRoot(root), &sfs) == nil {
		f.DiskGiB = int(uint64(sfs.Blocks) * uint64(sfs.Bsize) >> 30)
	}
	return f
}

func statRoot(root string) string {
	if root == "" {
		return "/"
	}
	return root
}

// osRelease is PRETTY_NAME of root/etc/os-release (else /etc/os-release).
func osRelease(root string) string {
	for _, p := range []string{filepath.Join(root, "etc/os-release"), "/etc/os-release"} {
		raw, err := os.ReadFile(p)
		if err != nil {
			continue
		}
		for line := range strings.SplitSeq(string(raw), "\n") {
			if v, ok := strings.CutPrefix(line, "PRETTY_NAME="); ok {
				return strings.Trim(v, `"'`)
			}
		}
	}
	return runtime.GOOS
}

// memInfo is /proc/meminfo in kB.
func memInfo() map[string]uint64 {
	out := map[string]uint64{}
	f, err := os.Open("/proc/meminfo")
	if err != nil {
		return out
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		k, v, ok := strings.Cut(sc.Text(), ":")
		if !ok {
			continue
		}
		n, err := strconv.ParseUint(strings.TrimSuffix(strings.TrimSpace(v), " kB"), 10, 64)
		if err == nil {
			out[k] = n
		}
	}
	return out
}

// localAddress is the address this machine reaches the server from (no
// packet is sent: a UDP "connection" only picks the route).
func localAddress(base string) (v4, v6 string) {
	u, err := url.Parse(base)
	if err != nil {
		return "", ""
	}
	port := u.Port()
	if port == "" {
		port = "443"
	}
	conn, err := net.Dial("udp", net.JoinHostPort(u.Hostname(), port))
	if err != nil {
		return "", ""
	}
	defer conn.Close()
	a, ok := conn.LocalAddr().(*net.UDPAddr)
	if !ok {
		return "", ""
	}
	if a.IP.To4() != nil {
		return a.IP.String(), ""
	}
	return "", a.IP.String()
}

// inventory is what a heartbeat reports.
func inventory(root string) map[string]any {
	mem := memInfo()
	system := map[string]any{"arch": runtime.GOARCH, "cpus": runtime.NumCPU(), "os": osRelease(root),
		"memory_total_mib": mem["MemTotal"] / 1024, "memory_available_mib": mem["MemAvailable"] / 1024}
	if raw, err := os.ReadFile("/proc/uptime"); err == nil {
		if f := strings.Fields(string(raw)); len(f) > 0 {
			if up, err := strconv.ParseFloat(f[0], 64); err == nil {
				system["uptime_seconds"] = int64(up)
			}
		}
	}
	if raw, err := os.ReadFile("/proc/loadavg"); err == nil {
		if f := strings.Fields(string(raw)); len(f) >= 3 {
			system["load"] = f[:3]
		}
	}
	if raw, err := os.ReadFile("/proc/sys/kernel/osrelease"); err == nil {
		system["kernel"] = strings.TrimSpace(string(raw))
	}
	var network []map[string]any
	if ifs, err := net.Interfaces(); err == nil {
		for _, i := range ifs {
			addrs, _ := i.Addrs()
			list := make([]string, 0, len(addrs))
			for _, a := range addrs {
				list = append(list, a.String())
			}
			network = append(network, map[string]any{"name": i.Name, "mac": i.HardwareAddr.String(), "mtu": i.MTU, "up": i.Flags&net.FlagUp != 0, "addresses": list})
		}
	}
	var disks []map[string]any
	var sfs syscall.Statfs_t
	if syscall.Statfs(statRoot(root), &sfs) == nil {
		bs := uint64(sfs.Bsize)
		disks = append(disks, map[string]any{"mount": "/", "total_gib": uint64(sfs.Blocks) * bs >> 30, "free_gib": uint64(sfs.Bavail) * bs >> 30})
	}
	return map[string]any{"system": system, "network": network, "disks": disks}
}
