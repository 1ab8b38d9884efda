package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"

	"github.com/spf13/cobra"
)

// registration is the part of POST /v1/agent/register's answer join uses.
type registration struct {
	Node struct {
		ID             string `json:"id"`
		Name           string `json:"name"`
		OrganizationID string `json:"organization_id"`
	} `json:"node"`
	AgentToken       string            `json:"agent_token"`
	HostCertificates []hostCertificate `json:"host_certificates"`
	UserCAKeys       string            `json:"user_ca_keys"`
	KRL              []byte            `json:"krl"`
	ETags            map[string]string `json:"etags"`
	Warnings         []string          `json:"warnings"`
}

func (c *cli) nodeJoinCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "join --url URL --token TOKEN [--name NAME] [--labels k=v,...] [--root DIR]",
		Short: "Registers this machine with a registration token and makes it trusted.",
		Long: `Registers this machine with a registration token and makes it trust the
organization's SSH user CA and KRL and present host certificates of its
host CA. Writes atomically: etc/ssh/shardform_user_ca.pub,
etc/ssh/shardform_revoked.krl, the host certificates beside the host keys,
etc/ssh/sshd_config.d/shardform.conf and etc/shardform/agent.json (the agent
token, mode 0600); installs a systemd timer running node refresh every
minute (or prints the cron line) right after saving the agent token, so
a later failure is finished by the refresh; reloads sshd when it runs.
On a machine that has joined (an agent token in etc/shardform/agent.json)
it refreshes instead of registering again, unless the server refuses that
agent token (the node was deleted).
The token may come from SHARDFORM_REGISTRATION_TOKEN instead of --token.`,
		Args: noArgs,
	}
	f := cmd.Flags()
	base := f.String("url", "", "the API's address, e.g. https://shardform.example.com")
	token := f.String("token", "", "a registration token (shardform_reg_...)")
	name := f.String("name", "", "the node's name (default: the token's, else the hostname)")
	var labels stringList
	f.Var(&labels, "labels", "the node's labels, k=v (repeatable, or comma-separated)")
	root := f.String("root", "/", "write under this directory instead of /")
	hostname := f.String("hostname", "", "the hostname to report (default: the machine's)")
	cmd.RunE = func(cmd *cobra.Command, _ []string) error {
		return runNodeJoin(cmd, *base, *token, *name, labels, *root, *hostname, c.env, c.stdout)
	}
	return cmd
}

// runNodeJoin runs `shardform node join`.
func runNodeJoin(cmd *cobra.Command, baseFlag, tokenFlag, nameFlag string, labels stringList, rootFlag, hostnameFlag string, env func(string) string, out io.Writer) error {
	ctx := cmd.Context()
	base, token, name, root, hostname := &baseFlag, &tokenFlag, &nameFlag, &rootFlag, &hostnameFlag
	if *token == "" {
		*token = env("SHARDFORM_REGISTRATION_TOKEN")
	}
	u := strings.TrimRight(strings.TrimSpace(*base), "/")
	if !strings.HasPrefix(u, "http://") && !strings.HasPrefix(u, "https://") {
		return &usageError{msg: "node join: --url must be an http:// or https:// address", usage: cmd.UsageString()}
	}
	if *token == "" {
		return &usageError{msg: "node join: --token is required", usage: cmd.UsageString()}
	}
	lbl := map[string]string{}
	for _, l := range labels {
		k, v, ok := strings.Cut(l, "=")
		if !ok || k == "" {
			return &usageError{msg: fmt.Sprintf("node join: --labels: %q is not k=v", l), usage: cmd.UsageString()}
		}
		lbl[k] = v
	}
	if *hostname == "" {
		h, err := os.Hostname()
		if err != nil {
			return fmt.Errorf("node join: hostname: %w", err)
		}
		*hostname = h
	}
	files, err := hostKeyFiles(*root)
	if err != nil {
		return fmt.Errorf("node join: %w", err)
	}
	keys, err := readHostKeys(files)
	if err != nil {
		return fmt.Errorf("node join: %w", err)
	}
	// Joined before (a re-run, by hand or by a retry loop, with a spent
	// token): refresh with the agent token instead of registering again;
	// a refused agent token (the node was deleted) registers again.
	if st, err := loadNodeState(*root); err == nil && st.AgentToken != "" {
		err := runNodeRefresh(ctx, *root, out)
		var refused *errRefused
		switch {
		case err == nil:
			if err := installRefresh(*root, out); err != nil {
				return fmt.Errorf("node join: %w", err)
			}
			fmt.Fprintf(out, "Already joined as node %s (%s): refreshed.\n", st.NodeName, st.NodeID)
			return nil
		case errors.As(err, &refused):
			fmt.Fprintf(out, "The agent token of node %s was refused (%s): registering again.\n", st.NodeID, refused.msg)
		default:
			return fmt.Errorf("node join: already joined as node %s: %w", st.NodeID, err)
		}
	}
	body := map[string]any{"hostname": *hostname, "host_public_keys": keys, "facts": gatherFacts(*root), "version": version, "labels": lbl}
	if *name != "" {
		body["name"] = *name
	}
	if v4, v6 := localAddress(u); v4 != "" {
		body["ipv4"] = v4
	} else if v6 != "" {
		body["ipv6"] = v6
	}
	c := newAgentClient(u)
	_, raw, err := c.do(ctx, "POST", "/v1/agent/register", map[string]string{"Authorization": "Bearer " + *token}, body)
	if err != nil {
		return fmt.Errorf("node join: %w", err)
	}
	var reg registration
	if err := json.Unmarshal(raw, &reg); err != nil || reg.AgentToken == "" {
		return fmt.Errorf("node join: the server's answer is not a registration: %.200s", raw)
	}
	// The agent token and the refresh first: whatever fails after them,
	// the refresh every minute (or a re-run) finishes.
	st := nodeState{URL: u, NodeID: reg.Node.ID, NodeName: reg.Node.Name, OrganizationID: reg.Node.OrganizationID,
		AgentToken: reg.AgentToken, HostKeys: files, ETags: map[string]string{}}
	if err := st.save(*root); err != nil {
		return fmt.Errorf("node join: save the agent token: %w", err)
	}
	var errs []error
	if err := installRefresh(*root, out); err != nil {
		errs = append(errs, err)
	}
	// The trust files from the answer, with their ETags; fetched when the
	// answer lacks them (the server could not read them then).
	ca, krl := filepath.Join(*root, nodeUserCAPath), filepath.Join(*root, nodeKRLPath)
	if reg.UserCAKeys != "" && len(reg.KRL) > 0 {
		if err := writeAtomic(ca, []byte(reg.UserCAKeys), 0o644); err != nil {
			errs = append(errs, err)
		} else if err := writeAtomic(krl, reg.KRL, 0o644); err != nil {
			errs = append(errs, err)
		} else {
			st.ETags["user_ca"], st.ETags["krl"] = reg.ETags["user_ca"], reg.ETags["krl"]
		}
	} else {
		auth := map[string]string{"X-Agent-Token": st.AgentToken}
		for _, f := range []struct{ key, path, file string }{{"user_ca", "/v1/agent/ssh/ca-public-key", ca}, {"krl", "/v1/agent/ssh/krl", krl}} {
			if _, err := refreshFile(ctx, c, auth, &st, f.key, f.path, f.file); err != nil {
				errs = append(errs, err)
			}
		}
	}
	if err := st.save(*root); err != nil {
		errs = append(errs, err)
	}
	certs, err := writeHostCerts(files, keys, reg.HostCertificates)
	if err != nil {
		errs = append(errs, err)
	}
	if err := writeSSHDConfig(*root, certs); err != nil {
		errs = append(errs, err)
	}
	for _, w := range reg.Warnings {
		fmt.Fprintln(out, "warning:", w)
	}
	fmt.Fprintf(out, "Joined as node %s (%s); %d host certificate(s) written.\n", reg.Node.Name, reg.Node.ID, len(certs))
	if reloadSSHD(*root) {
		fmt.Fprintln(out, "Reloaded sshd.")
	}
	if len(errs) > 0 {
		return fmt.Errorf("node join: joined, but %w (node refresh every minute finishes it)", errs[0])
	}
	return nil
}

// writeSSHDConfig writes the sshd_config.d snippet once both trust files
// are there: a RevokedKeys file that is missing makes sshd refuse everyone.
func writeSSHDConfig(root string, certs []string) error {
	for _, f := range []string{nodeUserCAPath, nodeKRLPath} {
		if fi, err := os.Stat(filepath.Join(root, f)); err != nil || !fi.Mode().IsRegular() {
			return fmt.Errorf("sshd not configured yet: %s is not a file", filepath.Join(root, f))
		}
	}
	return writeAtomic(filepath.Join(root, nodeSSHDConf), sshdConfig(root, certs), 0o644)
}

// installRefresh installs a systemd timer running node refresh every
// minute when systemd runs the machine; otherwise it prints the cron line.
func installRefresh(root string, out io.Writer) error {
	bin, err := os.Executable()
	if err != nil {
		bin = "/usr/local/bin/shardform"
	}
	cmd := fmt.Sprintf("%s node refresh --root %s", bin, root)
	if _, err := os.Stat(filepath.Join(root, "run/systemd/system")); err != nil {
		fmt.Fprintf(out, "No systemd: add this line to /etc/crontab to refresh every minute:\n* * * * * root %s\n", cmd)
		return nil
	}
	service := fmt.Sprintf(`[Unit]
Description=shardform node refresh (SSH CA keys, KRL, host certificates, heartbeat)
After=network-online.target

[Service]
Type=oneshot
ExecStart=%s
`, cmd)
	timer := `[Unit]
Description=shardform node refresh every minute

[Timer]
OnBootSec=30s
OnUnitActiveSec=60s
AccuracySec=5s

[Install]
WantedBy=timers.target
`
	dir := filepath.Join(root, nodeSystemdDir)
	if err := writeAtomic(filepath.Join(dir, "shardform-refresh.service"), []byte(service), 0o644); err != nil {
		return err
	}
	if err := writeAtomic(filepath.Join(dir, "shardform-refresh.timer"), []byte(timer), 0o644); err != nil {
		return err
	}
	if root != "/" {
		fmt.Fprintf(out, "Wrote shardform-refresh.timer in %s (not enabled: --root is not /).\n", dir)
		return nil
	}
	for _, args := range [][]string{{"daemon-reload"}, {"enable", "--now", "shardform-refresh.timer"}} {
		if outp, err := exec.Command("systemctl", args...).CombinedOutput(); err != nil {
			return errors.New("systemctl " + strings.Join(args, " ") + ": " + strings.TrimSpace(string(outp)))
		}
	}
	fmt.Fprintln(out, "Enabled shardform-refresh.timer (node refresh every minute).")
	return nil
}
