package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"time"

	"github.com/spf13/cobra"
	"golang.org/x/crypto/ssh"
)

// runNodeRefresh runs `shardform node refresh`: quiet on success, one line
// on failure. Every step runs even when one fails; a file is replaced only
// by a complete new one from the server, so an unreachable server leaves
// the previous CA keys and KRL in place (a missing RevokedKeys file would
// make sshd refuse everyone).
func (c *cli) nodeRefreshCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "refresh [--root DIR]",
		Short: "Refreshes the CA keys, KRL and host certificates; sends a heartbeat.",
		Long: `Refreshes the SSH user CA keys and the KRL (conditional GETs: unchanged
files are not sent again), renews the host certificates when less than a
third of their validity is left (then reloads sshd), and sends a heartbeat
with the inventory. Quiet on success.`,
		Args: noArgs,
	}
	root := cmd.Flags().String("root", "/", "the directory node join wrote under")
	cmd.RunE = func(cmd *cobra.Command, _ []string) error { return runNodeRefresh(cmd.Context(), *root, c.stdout) }
	return cmd
}

func runNodeRefresh(ctx context.Context, rootFlag string, out io.Writer) error {
	root := &rootFlag
	st, err := loadNodeState(*root)
	if err != nil {
		return fmt.Errorf("node refresh: %w", err)
	}
	c := newAgentClient(st.URL)
	auth := map[string]string{"X-Agent-Token": st.AgentToken}
	var errs []error
	changed := false
	// The heartbeat first: its answer names the trust files' current
	// ETags, so when nothing changed it is the only request.
	var hb struct {
		ETags          map[string]string `json:"etags"`
		HostPrincipals []string          `json:"host_principals"`
	}
	if _, raw, err := c.do(ctx, "POST", "/v1/agent/heartbeat", auth, map[string]any{"version": version, "inventory": inventory(*root)}); err != nil {
		errs = append(errs, err)
	} else if err := json.Unmarshal(raw, &hb); err != nil {
		errs = append(errs, fmt.Errorf("heartbeat answer: %w", err))
	}
	for _, f := range []struct{ key, path, file string }{
		{"user_ca", "/v1/agent/ssh/ca-public-key", nodeUserCAPath},
		{"krl", "/v1/agent/ssh/krl", nodeKRLPath},
	} {
		file := filepath.Join(*root, f.file)
		if cur := hb.ETags[f.key]; cur != "" && cur == st.ETags[f.key] {
			if _, err := os.Stat(file); err == nil {
				continue // unchanged
			}
		}
		updated, err := refreshFile(ctx, c, auth, &st, f.key, f.path, file)
		if err != nil {
			errs = append(errs, err)
		}
		changed = changed || updated
	}
	renewed, err := renewHostCerts(ctx, c, auth, *root, st, hb.HostPrincipals)
	if err != nil {
		errs = append(errs, err)
	}
	if _, err := os.Stat(filepath.Join(*root, nodeSSHDConf)); !renewed && errors.Is(err, os.ErrNotExist) {
		// A join that could not write the trust files: sshd is told
		// once they are there.
		if err := writeSSHDConfig(*root, existingCerts(st.HostKeys)); err != nil {
			errs = append(errs, err)
		} else {
			renewed = true // reload sshd
		}
	}
	if changed {
		if err := st.save(*root); err != nil {
			errs = append(errs, err)
		}
	}
	if renewed {
		reloadSSHD(*root)
	}
	if len(errs) > 0 {
		// A refused token comes first: it needs a person (join again).
		for _, e := range errs {
			var refused *errRefused
			if errors.As(e, &refused) {
				return &errRefused{msg: "node refresh: " + refused.msg}
			}
		}
		return fmt.Errorf("node refresh: %w (previous files kept)", errs[0])
	}
	return nil
}

// refreshFile fetches one trust file with If-None-Match; 304 keeps the file.
func refreshFile(ctx context.Context, c *agentClient, auth map[string]string, st *nodeState, key, path, file string) (bool, error) {
	h := map[string]string{}
	for k, v := range auth {
		h[k] = v
	}
	if etag := st.ETags[key]; etag != "" {
		if _, err := os.Stat(file); err == nil {
			h["If-None-Match"] = etag
		}
	}
	resp, body, err := c.do(ctx, "GET", path, h, nil)
	if err != nil {
		return false, err
	}
	if resp.StatusCode == http.StatusNotModified {
		return false, nil
	}
	if resp.StatusCode != http.StatusOK {
		return false, fmt.Errorf("GET %s: %d", path, resp.StatusCode)
	}
	if err := writeAtomic(file, body, 0o644); err != nil {
		return false, err
	}
	st.ETags[key] = resp.Header.Get("ETag")
	return true, nil
}

// needsRenewal: no certificate, one that does not parse or certify key,
// less than a third of its validity left, or (principals given: the
// heartbeat's) principals other than the node's now, as when a power
// cycle gave the node a new address.
func needsRenewal(certFile, key string, now time.Time, principals []string) bool {
	raw, err := os.ReadFile(certFile)
	if err != nil {
		return true
	}
	pub, _, _, _, err := ssh.ParseAuthorizedKey(raw)
	if err != nil {
		return true
	}
	cert, ok := pub.(*ssh.Certificate)
	if !ok || !sameKey(string(ssh.MarshalAuthorizedKey(cert.Key)), key) {
		return true
	}
	if len(principals) > 0 && !samePrincipals(cert.ValidPrincipals, principals) {
		return true
	}
	after, before := time.Unix(int64(cert.ValidAfter), 0), time.Unix(int64(cert.ValidBefore), 0)
	return before.Sub(now) < before.Sub(after)/3
}

// samePrincipals compares two principal lists as sets.
func samePrincipals(a, b []string) bool {
	a, b = slices.Clone(a), slices.Clone(b)
	slices.Sort(a)
	slices.Sort(b)
	return slices.Equal(slices.Compact(a), slices.Compact(b))
}

// renewHostCerts renews the host certificates when one needs it (all at
// once: one request), principals being the node's now (none: not
// compared). Whether any was written.
func renewHostCerts(ctx context.Context, c *agentClient, auth map[string]string, root string, st nodeState, principals []string) (bool, error) {
	files := st.HostKeys
	if len(files) == 0 {
		var err error
		if files, err = hostKeyFiles(root); err != nil {
			return false, err
		}
	}
	keys, err := readHostKeys(files)
	if err != nil {
		return false, err
	}
	need := false
	now := time.Now()
	for i, f := range files {
		if needsRenewal(certPathOf(f), keys[i], now, principals) {
			need = true
		}
	}
	if !need {
		return false, nil
	}
	_, raw, err := c.do(ctx, "POST", "/v1/agent/host-certificates", auth, map[string]any{"host_public_keys": keys})
	if err != nil {
		return false, err
	}
	var ans struct {
		HostCertificates []hostCertificate `json:"host_certificates"`
	}
	if err := json.Unmarshal(raw, &ans); err != nil {
		return false, fmt.Errorf("renew host certificates: %w", err)
	}
	certs, err := writeHostCerts(files, keys, ans.HostCertificates)
	if err != nil {
		return len(certs) > 0, err
	}
	// The snippet names every certificate (one may be new).
	return true, writeSSHDConfig(root, certs)
}

// existingCerts are the host certificates beside the host keys' files.
func existingCerts(files []string) []string {
	var out []string
	for _, f := range files {
		if _, err := os.Stat(certPathOf(f)); err == nil {
			out = append(out, certPathOf(f))
		}
	}
	return out
}
