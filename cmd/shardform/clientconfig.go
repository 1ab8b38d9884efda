package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
)

// cliConfig is the client's config file, written by shardform login (and
// ssh configure): the server, the API token and the organization to act
// in. Mode 0600: it holds the token.
type cliConfig struct {
	URL            string `json:"url"`
	Token          string `json:"token"`
	TokenID        string `json:"token_id,omitempty"`        // the token's id, so logout can delete it on the server
	OrganizationID string `json:"organization_id,omitempty"` // sent as X-Organization-ID
	Email          string `json:"email,omitempty"`
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

// saveCLIConfig writes the config file atomically, mode 0600, and answers
// its path.
func saveCLIConfig(env func(string) string, c cliConfig) (string, error) {
	path := configPath(env)
	if path == "" {
		return "", errors.New("no place for the config file: set SHARDFORM_CONFIG or HOME")
	}
	buf, err := json.MarshalIndent(c, "", "  ")
	if err != nil {
		return "", err
	}
	if err := writeAtomic(path, append(buf, '\n'), 0o600); err != nil {
		return "", fmt.Errorf("write config %s: %w", path, err)
	}
	return path, nil
}
