package main

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/spf13/cobra"
	"golang.org/x/crypto/ssh"
)

// sshCmd is `shardform ssh sign|configure`.
func (c *cli) sshCmd() *cobra.Command {
	ssh := group("ssh", "SSH certificates from the organization's CA.", "command")
	ssh.AddCommand(c.sshSignCmd(), c.sshConfigureCmd(), c.sshTrustCmd())
	return ssh
}

// runSSHWith runs `shardform ssh ...` and answers its error (tests).
func runSSHWith(ctx context.Context, args []string, env func(string) string, stdin io.Reader, out io.Writer) error {
	return newCLI(env, stdin, out, io.Discard).execute(ctx, append([]string{"ssh"}, args...))
}

func (c *cli) sshConfigureCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "configure --url URL (--token TOKEN | --token-stdin)",
		Short: "Saves the server URL and an API token in the config file.",
		Long:  "Saves the server URL and API token in the config file\n($SHARDFORM_CONFIG, else ~/.config/shardform/config.json, mode 0600).\nshardform login does the same after logging in.",
		Args:  noArgs,
	}
	url := cmd.Flags().String("url", "", "the API's address, e.g. https://shardform.example.com")
	token := cmd.Flags().String("token", "", "an API token (shardform_api_...)")
	fromStdin := cmd.Flags().Bool("token-stdin", false, "read the API token from standard input")
	cmd.RunE = func(cmd *cobra.Command, _ []string) error {
		return runConfigure(*url, *token, *fromStdin, c.env, c.stdin, c.stdout)
	}
	return cmd
}

// runConfigure runs `shardform ssh configure`.
func runConfigure(url, tokenFlag string, fromStdin bool, env func(string) string, stdin io.Reader, out io.Writer) error {
	token := &tokenFlag
	if fromStdin {
		raw, err := io.ReadAll(io.LimitReader(stdin, 4096))
		if err != nil {
			return fmt.Errorf("ssh configure: read token: %w", err)
		}
		*token = strings.TrimSpace(string(raw))
	}
	u := strings.TrimRight(strings.TrimSpace(url), "/")
	if !strings.HasPrefix(u, "http://") && !strings.HasPrefix(u, "https://") {
		return errors.New("ssh configure: --url must be an http:// or https:// address")
	}
	if *token == "" {
		return errors.New("ssh configure: --token or --token-stdin is required")
	}
	// A token of its own: whatever login saved about the previous one goes.
	cfg := cliConfig{URL: u, Token: *token}
	path, err := saveCLIConfig(env, cfg)
	if err != nil {
		return fmt.Errorf("ssh configure: %w", err)
	}
	fmt.Fprintf(out, "Saved the server URL and token in %s\n", path)
	return nil
}

// ephemeralComment marks key pairs made by --generate, the only ones it
// may overwrite.
const ephemeralComment = "shardform-ephemeral"

func (c *cli) sshSignCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "sign [flags]",
		Short: "Gets a short-lived SSH certificate for a public key.",
		Long:  "Gets a short-lived certificate for a public key from the SSH CA and writes it\nbeside the key as <key>-cert.pub, where OpenSSH finds it. The server and API\ntoken come from SHARDFORM_URL and SHARDFORM_TOKEN, else from the config file.",
		Args:  noArgs,
	}
	f := cmd.Flags()
	keyPath := f.String("key", "", "public key to certify (default ~/.ssh/id_ed25519.pub; with --generate ~/.ssh/shardform_ed25519.pub)")
	var principals stringList
	f.Var(&principals, "principal", "user name to log in as (repeatable; default root)")
	hours := f.Int("hours", 0, "validity in hours (default: the organization's policy, 8 unless changed)")
	generate := f.Bool("generate", false, "make a fresh ephemeral ed25519 key pair first")
	cmd.RunE = func(cmd *cobra.Command, _ []string) error {
		return c.sshSign(cmd.Context(), *keyPath, principals, *hours, cmd.Flags().Changed("hours"), *generate)
	}
	return cmd
}

// sshSign runs `shardform ssh sign`. Errors are one line.
func (c *cli) sshSign(ctx context.Context, keyPathFlag string, principals stringList, hoursFlag int, hoursSet, generateFlag bool) error {
	home := c.env("HOME")
	keyPath, hours, generate, out := &keyPathFlag, &hoursFlag, &generateFlag, c.stdout
	if len(principals) == 0 {
		principals = stringList{"root"}
	}
	if *keyPath == "" {
		name := "id_ed25519.pub"
		if *generate {
			name = "shardform_ed25519.pub"
		}
		*keyPath = filepath.Join(home, ".ssh", name)
	} else if strings.HasPrefix(*keyPath, "~/") {
		*keyPath = filepath.Join(home, (*keyPath)[2:])
	}
	if !strings.HasSuffix(*keyPath, ".pub") {
		*keyPath += ".pub"
	}
	api, err := c.client()
	if err != nil {
		return fmt.Errorf("ssh sign: %w", err)
	}
	if api.base == "" {
		return errors.New("ssh sign: SHARDFORM_URL is not set and no config file names the server (the API's address, e.g. http://127.0.0.1:8080; or run shardform login)")
	}
	if api.token == "" {
		return errors.New("ssh sign: SHARDFORM_TOKEN is not set and no config file holds a token (an API token or access token; or run shardform login)")
	}
	if *generate {
		if err := generateKeyPair(*keyPath); err != nil {
			return fmt.Errorf("ssh sign: %w", err)
		}
		fmt.Fprintf(out, "Generated an ephemeral ed25519 key pair: %s\n", strings.TrimSuffix(*keyPath, ".pub"))
	}
	pub, err := os.ReadFile(*keyPath)
	if err != nil {
		return fmt.Errorf("ssh sign: read public key: %w", err)
	}

	body := map[string]any{"public_key": strings.TrimSpace(string(pub)), "principals": []string(principals)}
	if hoursSet {
		body["validity_hours"] = *hours
	}
	var signed struct {
		Certificate  string    `json:"certificate"`
		SerialNumber uint64    `json:"serial_number"`
		KeyID        string    `json:"key_id"`
		ValidBefore  time.Time `json:"valid_before"`
		Principals   []string  `json:"principals"`
		CA           string    `json:"ca_fingerprint"`
	}
	if _, err := api.call(ctx, http.MethodPost, "/v1/ssh/certificate", body, &signed); err != nil {
		return fmt.Errorf("ssh sign: %w", err)
	}
	certPath := strings.TrimSuffix(*keyPath, ".pub") + "-cert.pub"
	if err := os.WriteFile(certPath, []byte(strings.TrimSpace(signed.Certificate)+"\n"), 0o644); err != nil {
		return fmt.Errorf("ssh sign: write certificate: %w", err)
	}
	fmt.Fprintf(out, "Certificate written to %s\n", certPath)
	fmt.Fprintf(out, "  principals: %s\n", strings.Join(signed.Principals, ", "))
	fmt.Fprintf(out, "  valid until: %s (in %s)\n", signed.ValidBefore.Local().Format(time.RFC1123), time.Until(signed.ValidBefore).Round(time.Minute))
	fmt.Fprintf(out, "  serial %d, key id %q, CA %s\n", signed.SerialNumber, signed.KeyID, signed.CA)
	return nil
}

// generateKeyPair writes a new ed25519 key pair to pubPath and its private
// half beside it, refusing to overwrite a key it did not make.
func generateKeyPair(pubPath string) error {
	privPath := strings.TrimSuffix(pubPath, ".pub")
	if old, err := os.ReadFile(pubPath); err == nil {
		if !strings.HasSuffix(strings.TrimSpace(string(old)), ephemeralComment) {
			return fmt.Errorf("%s exists and was not made by --generate: choose another --key", pubPath)
		}
	} else if fileExists(privPath) {
		return fmt.Errorf("%s exists and was not made by --generate: choose another --key", privPath)
	}
	pub, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		return fmt.Errorf("generate key: %w", err)
	}
	block, err := ssh.MarshalPrivateKey(priv, ephemeralComment)
	if err != nil {
		return fmt.Errorf("generate key: %w", err)
	}
	sshPub, err := ssh.NewPublicKey(pub)
	if err != nil {
		return fmt.Errorf("generate key: %w", err)
	}
	if err := os.MkdirAll(filepath.Dir(privPath), 0o700); err != nil {
		return fmt.Errorf("generate key: %w", err)
	}
	_ = os.Remove(privPath) // may be read-only from an earlier run
	if err := os.WriteFile(privPath, pem.EncodeToMemory(block), 0o600); err != nil {
		return fmt.Errorf("write private key: %w", err)
	}
	line := strings.TrimSpace(string(ssh.MarshalAuthorizedKey(sshPub))) + " " + ephemeralComment + "\n"
	if err := os.WriteFile(pubPath, []byte(line), 0o644); err != nil {
		return fmt.Errorf("write public key: %w", err)
	}
	return nil
}

func fileExists(path string) bool {
	_, err := os.Stat(path)
	return err == nil
}

// sshTrustCmd writes the organization's host trust files: the host CA
// (@cert-authority lines) and the host KRL, the certificates of deleted
// nodes that ssh must refuse.
func (c *cli) sshTrustCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "trust [--dir ~/.ssh]",
		Short: "Writes the organization's host CA (known hosts) and host KRL for ssh.",
		Long: `Writes <dir>/shardform_known_hosts (the organization's host CA as
@cert-authority lines: GET /v1/ssh/known-hosts) and <dir>/shardform_host.krl
(the host certificates of deleted nodes: GET /v1/ssh/host-krl), then prints
the ssh_config lines that use them. Run it again (from cron, say) to pick up
a rotated host CA or a newly deleted node; both files are public.`,
		Args: noArgs,
	}
	dir := cmd.Flags().String("dir", "", "where to write the files (default ~/.ssh)")
	cmd.RunE = func(cmd *cobra.Command, _ []string) error {
		api, err := c.client()
		if err != nil {
			return err
		}
		if api.org == "" {
			return usageErr(cmd, "ssh trust: no organization: pass --org ID (or shardform login, which saves it)")
		}
		if *dir == "" {
			home := c.env("HOME")
			if home == "" {
				return usageErr(cmd, "ssh trust: no --dir and no HOME")
			}
			*dir = filepath.Join(home, ".ssh")
		}
		if err := os.MkdirAll(*dir, 0o700); err != nil {
			return err
		}
		files := []struct{ name, path string }{
			{"shardform_known_hosts", "/v1/ssh/known-hosts"},
			{"shardform_host.krl", "/v1/ssh/host-krl"},
		}
		written := map[string]string{}
		for _, f := range files {
			raw, err := api.call(cmd.Context(), http.MethodGet, f.path+"?organization_id="+url.QueryEscape(api.org), nil, nil)
			if err != nil {
				return err
			}
			path := filepath.Join(*dir, f.name)
			tmp := path + ".tmp"
			if err := os.WriteFile(tmp, raw, 0o644); err != nil {
				return err
			}
			if err := os.Rename(tmp, path); err != nil {
				return err
			}
			written[f.name] = path
		}
		fmt.Fprintf(c.stdout, "wrote %s and %s; in ~/.ssh/config:\n\nHost *\n    UserKnownHostsFile ~/.ssh/known_hosts %s\n    RevokedHostKeys %s\n",
			written["shardform_known_hosts"], written["shardform_host.krl"], written["shardform_known_hosts"], written["shardform_host.krl"])
		return nil
	}
	return cmd
}
