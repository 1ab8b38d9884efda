package main

import (
	"bytes"
	"cmp"
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/json"
	"encoding/pem"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"time"

	"golang.org/x/crypto/ssh"
)

const sshUsage = `usage: shardform ssh sign [--key ~/.ssh/id_ed25519.pub] [--principal root] [--hours 8] [--generate]
       shardform ssh configure --url URL (--token TOKEN | --token-stdin)

  sign       get a short-lived certificate for a public key from the SSH CA and
             write it beside the key as <key>-cert.pub, where OpenSSH finds it
  configure  save the server URL and API token in the config file
             ($SHARDFORM_CONFIG, else ~/.config/shardform/config.json, mode 0600)

The server and API token come from SHARDFORM_URL and SHARDFORM_TOKEN, else
from the config file.`

// cliConfig is the config file `shardform ssh configure` writes.
type cliConfig struct {
	URL   string `json:"url"`
	Token string `json:"token"`
}

// configPath is the CLI's config file: $SHARDFORM_CONFIG, else
// $XDG_CONFIG_HOME/shardform/config.json, else
// $HOME/.config/shardform/config.json; "" if none can be named.
func configPath(env func(string) string) string {
	if p := env("SHARDFORM_CONFIG"); p != "" {
		return p
	}
	if d := env("XDG_CONFIG_HOME"); d != "" {
		return filepath.Join(d, "shardform", "config.json")
	}
	if h := env("HOME"); h != "" {
		return filepath.Join(h, ".config", "shardform", "config.json")
	}
	return ""
}

// loadCLIConfig reads the config file; a missing file is an empty config.
func loadCLIConfig(env func(string) string) (cliConfig, error) {
	var c cliConfig
	path := configPath(env)
	if path == "" {
		return c, nil
	}
	raw, err := os.ReadFile(path)
	if errors.Is(err, os.ErrNotExist) {
		return c, nil
	}
	if err != nil {
		return c, fmt.Errorf("read config %s: %w", path, err)
	}
	if err := json.Unmarshal(raw, &c); err != nil {
		return c, fmt.Errorf("read config %s: %w", path, err)
	}
	return c, nil
}

// runConfigure runs `shardform ssh configure`.
func runConfigure(args []string, env func(string) string, stdin io.Reader, out io.Writer) error {
	const synopsis = "usage: shardform ssh configure --url URL (--token TOKEN | --token-stdin)\n\nSaves the server URL and API token in the config file\n($SHARDFORM_CONFIG, else ~/.config/shardform/config.json, mode 0600)."
	fs := newFlags("shardform ssh configure", synopsis)
	url := fs.String("url", "", "the API's address, e.g. https://shardform.example.com")
	token := fs.String("token", "", "an API token (shardform_api_...)")
	fromStdin := fs.Bool("token-stdin", false, "read the API token from standard input")
	if err := parseFlags(fs, args, out, synopsis); err != nil {
		return err
	}
	if *fromStdin {
		raw, err := io.ReadAll(io.LimitReader(stdin, 4096))
		if err != nil {
			return fmt.Errorf("ssh configure: read token: %w", err)
		}
		*token = strings.TrimSpace(string(raw))
	}
	u := strings.TrimRight(strings.TrimSpace(*url), "/")
	if !strings.HasPrefix(u, "http://") && !strings.HasPrefix(u, "https://") {
		return errors.New("ssh configure: --url must be an http:// or https:// address")
	}
	if *token == "" {
		return errors.New("ssh configure: --token or --token-stdin is required")
	}
	path := configPath(env)
	if path == "" {
		return errors.New("ssh configure: no place for the config file: set SHARDFORM_CONFIG or HOME")
	}
	buf, err := json.MarshalIndent(cliConfig{URL: u, Token: *token}, "", "  ")
	if err != nil {
		return fmt.Errorf("ssh configure: %w", err)
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return fmt.Errorf("ssh configure: %w", err)
	}
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, append(buf, '\n'), 0o600); err != nil {
		return fmt.Errorf("ssh configure: write config: %w", err)
	}
	if err := os.Rename(tmp, path); err != nil {
		return fmt.Errorf("ssh configure: write config: %w", err)
	}
	fmt.Fprintf(out, "Saved the server URL and token in %s\n", path)
	return nil
}

// ephemeralComment marks key pairs made by --generate, the only ones it
// may overwrite.
const ephemeralComment = "shardform-ephemeral"

// stringList is a repeatable flag that also splits on commas.
type stringList []string

func (l *stringList) String() string { return strings.Join(*l, ",") }

func (l *stringList) Set(v string) error {
	for p := range strings.SplitSeq(v, ",") {
		if p = strings.TrimSpace(p); p != "" {
			*l = append(*l, p)
		}
	}
	return nil
}

// runSSHWith runs `shardform ssh ...`. env reads the environment; output
// goes to out. Errors are one line.
func runSSHWith(ctx context.Context, args []string, env func(string) string, stdin io.Reader, out io.Writer) error {
	if len(args) == 0 || args[0] == "help" || args[0] == "-h" || args[0] == "--help" {
		fmt.Fprintln(out, sshUsage)
		return nil
	}
	if args[0] == "configure" {
		return runConfigure(args[1:], env, stdin, out)
	}
	if args[0] != "sign" {
		return &usageError{msg: fmt.Sprintf("ssh: unknown command %q (want: sign, configure)", args[0]), usage: sshUsage + "\n"}
	}
	const synopsis = "usage: shardform ssh sign [flags]\n\nGets a short-lived certificate for a public key from the SSH CA and writes it\nbeside the key as <key>-cert.pub, where OpenSSH finds it. The server and API\ntoken come from SHARDFORM_URL and SHARDFORM_TOKEN, else from the config file."
	home, _ := os.UserHomeDir()
	fs := newFlags("shardform ssh sign", synopsis)
	keyPath := fs.String("key", "", "public key to certify (default ~/.ssh/id_ed25519.pub; with --generate ~/.ssh/shardform_ed25519.pub)")
	var principals stringList
	fs.Var(&principals, "principal", "user name to log in as (repeatable; default root)")
	hours := fs.Int("hours", 0, "validity in hours (default: the organization's policy, 8 unless changed)")
	generate := fs.Bool("generate", false, "make a fresh ephemeral ed25519 key pair first")
	if err := parseFlags(fs, args[1:], out, synopsis); err != nil {
		return err
	}
	hoursSet := false
	fs.Visit(func(f *flag.Flag) { hoursSet = hoursSet || f.Name == "hours" })
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
	base, token := strings.TrimRight(env("SHARDFORM_URL"), "/"), env("SHARDFORM_TOKEN")
	if base == "" || token == "" {
		cfg, err := loadCLIConfig(env)
		if err != nil {
			return fmt.Errorf("ssh sign: %w", err)
		}
		base, token = cmp.Or(base, strings.TrimRight(cfg.URL, "/")), cmp.Or(token, cfg.Token)
	}
	if base == "" {
		return errors.New("ssh sign: SHARDFORM_URL is not set and no config file names the server (the API's address, e.g. http://127.0.0.1:8080; or run shardform ssh configure)")
	}
	if token == "" {
		return errors.New("ssh sign: SHARDFORM_TOKEN is not set and no config file holds a token (an API token or access token; or run shardform ssh configure)")
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
	if err := postJSON(ctx, base+"/v1/ssh/certificate", token, body, &signed); err != nil {
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

// postJSON posts body and decodes a 2xx answer into out; any other answer
// becomes one line with the API's message.
func postJSON(ctx context.Context, url, token string, body, out any) error {
	buf, err := json.Marshal(body)
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(ctx, 60*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, url, bytes.NewReader(buf))
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Authorization", "Bearer "+token)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return fmt.Errorf("cannot reach the API: %w", err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if resp.StatusCode/100 != 2 {
		var e struct {
			Error string `json:"error"`
		}
		msg := strings.TrimSpace(string(raw))
		if json.Unmarshal(raw, &e) == nil && e.Error != "" {
			msg = e.Error
		}
		msg = strings.Join(strings.Fields(msg), " ")
		if len(msg) > 300 {
			msg = msg[:300] + "…"
		}
		return fmt.Errorf("the API answered %d: %s", resp.StatusCode, msg)
	}
	if err := json.Unmarshal(raw, out); err != nil {
		return fmt.Errorf("unreadable answer from the API: %w", err)
	}
	return nil
}
