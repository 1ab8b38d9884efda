package main

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"os"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/shardform/shardform/domain"
)

func (c *cli) loginCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "login [--email E [--password P] [--mfa-code C] | --key shardform_api_...]",
		Short: "Logs in and saves an API token in the config file.",
		Long: `Logs in to the server (--url, SHARDFORM_URL or the config file's) and saves
an API token, the server and the organization in the config file
($SHARDFORM_CONFIG, else ~/.config/shardform/config.json, mode 0600).

  --email E      log in with a password (prompted without echo when omitted)
                 and the TOTP code when the account has MFA (--mfa-code for
                 scripts), then mint an API token named "shardform on <host>"
                 with every permission of your role
  --key TOKEN    save an API token after checking it with GET /v1/whoami
  (no flag)      the device flow: open the printed address in a browser where
                 you are logged in, enter the code, and the token arrives here`,
		Args: noArgs,
	}
	f := cmd.Flags()
	email := f.String("email", "", "the account's email")
	password := f.String("password", "", "the password (prompted without echo when omitted)")
	mfaCode := f.String("mfa-code", "", "the TOTP code, when the account has MFA (prompted when omitted)")
	key := f.String("key", "", "an API token to save (shardform_api_...)")
	var scopes stringList
	f.Var(&scopes, "scope", "device login: a permission the token asks for (repeatable; default every permission of the catalog, which an owner or admin holds)")
	cmd.RunE = func(cmd *cobra.Command, _ []string) error {
		api, err := c.client()
		if err != nil {
			return err
		}
		if api.base == "" {
			return usageErr(cmd, "login: no server: pass --url URL (or set SHARDFORM_URL)")
		}
		api.token = "" // a login starts from nothing
		switch {
		case *key != "" && *email != "":
			return usageErr(cmd, "login: --key and --email exclude each other")
		case *key != "":
			return c.loginKey(cmd.Context(), api, *key)
		case *email != "":
			return c.loginPassword(cmd.Context(), api, *email, *password, f.Changed("password"), *mfaCode)
		case *password != "" || *mfaCode != "":
			return usageErr(cmd, "login: --password and --mfa-code go with --email")
		}
		return c.loginDevice(cmd, api, scopes)
	}
	return cmd
}

// whoamiAnswer is the part of GET /v1/whoami the client reads.
type whoamiAnswer struct {
	User struct {
		ID      string `json:"id"`
		Email   string `json:"email"`
		IsAdmin bool   `json:"is_admin"`
	} `json:"user"`
	Organization *struct {
		ID   string `json:"id"`
		Role string `json:"role"`
	} `json:"organization"`
	Scopes     []string `json:"scopes"`
	AuthMethod string   `json:"auth_method"`
	APITokenID string   `json:"api_token_id"`
}

// apiTokenAnswer is an API token as POST /v1/api-tokens answers it.
type apiTokenAnswer struct {
	ID             string    `json:"id"`
	Name           string    `json:"name"`
	Token          string    `json:"token"`
	OrganizationID string    `json:"organization_id"`
	Scopes         []string  `json:"scopes"`
	ExpiresAt      time.Time `json:"expires_at"`
}

// loginKey checks a pasted API token and saves it.
func (c *cli) loginKey(ctx context.Context, api *apiClient, key string) error {
	api.token = key
	var who whoamiAnswer
	if _, err := api.call(ctx, http.MethodGet, "/v1/whoami", nil, &who); err != nil {
		return err
	}
	if who.AuthMethod != "api_token" {
		return errors.New("login --key: that is not an API token (shardform_api_...): use --email for an account")
	}
	org := ""
	if who.Organization != nil {
		org = who.Organization.ID
	}
	return c.saveLogin(api.base, key, who.APITokenID, org, who.User.Email)
}

// loginPassword logs in with the password (and the MFA code), mints an
// API token with every permission of the user's role and saves it; the
// session is logged out again.
func (c *cli) loginPassword(ctx context.Context, api *apiClient, email, password string, passwordGiven bool, mfaCode string) error {
	if !passwordGiven {
		p, err := c.prompt("Password: ", true)
		if err != nil {
			return fmt.Errorf("login: %w", err)
		}
		password = p
	}
	var login struct {
		AccessToken    string `json:"access_token"`
		RefreshToken   string `json:"refresh_token"`
		MFARequired    bool   `json:"mfa_required"`
		ChallengeToken string `json:"challenge_token"`
	}
	if _, err := api.call(ctx, http.MethodPost, "/v1/auth/login", map[string]string{"email": email, "password": password}, &login); err != nil {
		return err
	}
	if login.MFARequired {
		if mfaCode == "" {
			code, err := c.prompt("MFA code: ", false)
			if err != nil {
				return fmt.Errorf("login: %w", err)
			}
			mfaCode = code
		}
		if _, err := api.call(ctx, http.MethodPost, "/v1/auth/mfa/challenge",
			map[string]string{"challenge_token": login.ChallengeToken, "code": strings.TrimSpace(mfaCode)}, &login); err != nil {
			return err
		}
	}
	session := *api
	session.token = login.AccessToken
	defer func() {
		// The session was only needed to mint the token.
		_, _ = session.call(context.WithoutCancel(ctx), http.MethodPost, "/v1/auth/logout", map[string]string{"refresh_token": login.RefreshToken}, nil)
	}()
	var who whoamiAnswer
	if _, err := session.call(ctx, http.MethodGet, "/v1/whoami", nil, &who); err != nil {
		return err
	}
	if who.Organization == nil {
		return errors.New("login: you belong to no organization yet: create one (POST /v1/organizations) first")
	}
	var tok apiTokenAnswer
	if _, err := session.call(ctx, http.MethodPost, "/v1/api-tokens",
		map[string]any{"name": tokenName(), "scopes": who.Scopes}, &tok); err != nil {
		return err
	}
	return c.saveLogin(api.base, tok.Token, tok.ID, tok.OrganizationID, who.User.Email)
}

// tokenName names the API token a login mints after the machine.
func tokenName() string {
	host, err := os.Hostname()
	if err != nil || host == "" {
		host = "this machine"
	}
	name := "shardform on " + host
	if len(name) > domain.MaxNameLength {
		name = name[:domain.MaxNameLength]
	}
	return name
}

// deviceStart is POST /v1/auth/device's answer (RFC 8628 section 3.2).
type deviceStart struct {
	DeviceCode              string `json:"device_code"`
	UserCode                string `json:"user_code"`
	VerificationURI         string `json:"verification_uri"`
	VerificationURIComplete string `json:"verification_uri_complete"`
	ExpiresIn               int    `json:"expires_in"`
	Interval                int    `json:"interval"`
}

// loginDevice runs the device flow: the user approves the printed code in
// a browser session; the client polls for the API token.
func (c *cli) loginDevice(cmd *cobra.Command, api *apiClient, scopes []string) error {
	ctx := cmd.Context()
	var start deviceStart
	if len(scopes) == 0 {
		for _, p := range domain.Catalog() {
			scopes = append(scopes, string(p.Key))
		}
	}
	_, err := api.call(ctx, http.MethodPost, "/v1/auth/device", map[string]any{"client_name": tokenName(), "scopes": scopes}, &start)
	var aerr *apiError
	if errors.As(err, &aerr) && (aerr.Status == http.StatusNotFound || aerr.Status == http.StatusMethodNotAllowed) {
		return usageErr(cmd, "this server has no device login; use --email or --key")
	}
	if err != nil {
		return err
	}
	fmt.Fprintf(c.stdout, "To log in, open %s and enter the code: %s\n", start.VerificationURI, start.UserCode)
	if start.VerificationURIComplete != "" {
		fmt.Fprintf(c.stdout, "(or open %s)\n", start.VerificationURIComplete)
	}
	interval := time.Duration(max(start.Interval, 1)) * time.Second
	expires := c.now().Add(time.Duration(max(start.ExpiresIn, 60)) * time.Second)
	stop := c.progress("waiting for the approval")
	defer stop()
	for {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(interval):
		}
		var tok apiTokenAnswer
		_, err := api.call(ctx, http.MethodPost, "/v1/auth/device/token", map[string]string{"device_code": start.DeviceCode}, &tok)
		if errors.As(err, &aerr) && aerr.Status == http.StatusBadRequest {
			switch aerr.Message {
			case "authorization_pending":
				if c.now().After(expires) {
					return errors.New("login: the code expired before it was approved: run shardform login again")
				}
				continue
			case "slow_down":
				interval += 5 * time.Second
				continue
			case "expired_token":
				return errors.New("login: the code expired before it was approved: run shardform login again")
			case "access_denied":
				return errors.New("login: the login was denied in the browser")
			case "invalid_grant":
				return errors.New("login: the server no longer knows this login: run shardform login again")
			}
		}
		if err != nil {
			return err
		}
		stop()
		api.token = tok.Token
		var who whoamiAnswer
		if _, err := api.call(ctx, http.MethodGet, "/v1/whoami", nil, &who); err != nil {
			return err
		}
		return c.saveLogin(api.base, tok.Token, tok.ID, tok.OrganizationID, who.User.Email)
	}
}

// saveLogin writes the login into the config file and says so.
func (c *cli) saveLogin(url, token, tokenID, org, email string) error {
	cfg, err := loadCLIConfig(c.env)
	if err != nil {
		return err
	}
	cfg = cliConfig{URL: url, Token: token, TokenID: tokenID, OrganizationID: org, Email: email}
	path, err := saveCLIConfig(c.env, cfg)
	if err != nil {
		return err
	}
	if c.quiet {
		return nil
	}
	fmt.Fprintf(c.stdout, "Logged in to %s as %s (organization %s); the token is saved in %s\n", url, dash(email), dash(org), path)
	return nil
}

func (c *cli) logoutCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "logout",
		Short: "Deletes the saved API token on the server and from the config file.",
		Args:  noArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			ctx := cmd.Context()
			cfg, err := loadCLIConfig(c.env)
			if err != nil {
				return err
			}
			if cfg.Token == "" {
				return errors.New("logout: not logged in (no token in the config file)")
			}
			api, err := c.client()
			if err != nil {
				return err
			}
			api.token = cfg.Token // the saved token, even when SHARDFORM_TOKEN is set
			id := cfg.TokenID
			if id == "" {
				var who whoamiAnswer
				if _, err := api.call(ctx, http.MethodGet, "/v1/whoami", nil, &who); err == nil {
					id = who.APITokenID
				}
			}
			var aerr *apiError
			if id != "" {
				_, err := api.call(ctx, http.MethodDelete, "/v1/api-tokens/"+id, nil, nil)
				// A token the server no longer knows is as good as deleted.
				if err != nil && !(errors.As(err, &aerr) && (aerr.Status == http.StatusUnauthorized || aerr.Status == http.StatusNotFound)) {
					return err
				}
			}
			cfg.Token, cfg.TokenID = "", ""
			path, err := saveCLIConfig(c.env, cfg)
			if err != nil {
				return err
			}
			if !c.quiet {
				fmt.Fprintf(c.stdout, "Logged out: the token is deleted on %s and removed from %s\n", cfg.URL, path)
			}
			return nil
		},
	}
}

func (c *cli) whoamiCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "whoami",
		Short: "Shows who the saved token (or SHARDFORM_TOKEN) is.",
		Args:  noArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			api, err := c.authed()
			if err != nil {
				return err
			}
			var who whoamiAnswer
			raw, err := api.call(cmd.Context(), http.MethodGet, "/v1/whoami", nil, &who)
			if err != nil {
				return err
			}
			if c.jsonOut() {
				return c.writeJSON(raw)
			}
			if c.quiet {
				return c.ids([]string{who.User.ID})
			}
			org, role := "-", "-"
			if who.Organization != nil {
				org, role = who.Organization.ID, who.Organization.Role
			}
			return c.fields([][2]string{
				{"email", who.User.Email}, {"user", who.User.ID}, {"organization", org}, {"role", role},
				{"auth", who.AuthMethod}, {"scopes", strings.Join(who.Scopes, " ")}, {"server", api.base},
			})
		},
	}
}
