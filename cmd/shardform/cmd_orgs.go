package main

import (
	"fmt"
	"net/http"
	"time"

	"github.com/google/uuid"

	"github.com/spf13/cobra"
)

// organization is an organization as GET /v1/organizations lists it.
type organization struct {
	ID        string    `json:"id"`
	Name      string    `json:"name"`
	Role      string    `json:"role"`
	CreatedAt time.Time `json:"created_at"`
}

func (c *cli) orgsCmd() *cobra.Command {
	orgs := group("orgs", "Lists your organizations and switches between them.", "command")
	orgs.AddCommand(&cobra.Command{
		Use: "list", Short: "Lists the organizations you belong to.", Args: noArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			api, err := c.authed()
			if err != nil {
				return err
			}
			var list struct {
				Data []organization `json:"data"`
			}
			raw, err := api.call(cmd.Context(), http.MethodGet, "/v1/organizations?limit=100", nil, &list)
			if err != nil {
				return err
			}
			switch {
			case c.jsonOut():
				return c.writeJSON(raw)
			case c.quiet:
				ids := make([]string, len(list.Data))
				for i, o := range list.Data {
					ids[i] = o.ID
				}
				return c.ids(ids)
			}
			rows := make([][]string, len(list.Data))
			for i, o := range list.Data {
				cur := ""
				if o.ID == api.org {
					cur = "*"
				}
				rows[i] = []string{cur, o.ID, o.Name, o.Role, ago(o.CreatedAt, c.now())}
			}
			return c.table([]string{"", "ID", "NAME", "ROLE", "CREATED"}, rows)
		},
	}, &cobra.Command{
		Use: "switch ID|NAME", Short: "Makes an organization the one the client acts in (saved in the config file).",
		Args: exactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			api, err := c.authed()
			if err != nil {
				return err
			}
			api.org = "" // list every organization, whichever is selected
			var list struct {
				Data []organization `json:"data"`
			}
			if _, err := api.call(cmd.Context(), http.MethodGet, "/v1/organizations?limit=100", nil, &list); err != nil {
				return err
			}
			var found *organization
			for i, o := range list.Data {
				if o.ID == args[0] || o.Name == args[0] {
					if found != nil {
						return fmt.Errorf("orgs switch: two organizations are named %q: give the id", args[0])
					}
					found = &list.Data[i]
				}
			}
			if found == nil {
				// An API token sees its own organization only: another
				// one's id is saved for the next login to mint a token in.
				if _, err := uuid.Parse(args[0]); err != nil {
					return &apiError{Status: http.StatusNotFound, Message: fmt.Sprintf("no organization %q among yours (shardform orgs list)", args[0])}
				}
				found = &organization{ID: args[0], Name: args[0], Role: "not visible to this token"}
			}
			cfg, err := loadCLIConfig(c.env)
			if err != nil {
				return err
			}
			cfg.OrganizationID = found.ID
			if _, err := saveCLIConfig(c.env, cfg); err != nil {
				return err
			}
			// An API token acts in the organization it was made in only.
			var who whoamiAnswer
			if _, err := api.call(cmd.Context(), http.MethodGet, "/v1/whoami", nil, &who); err == nil &&
				who.AuthMethod == "api_token" && who.Organization != nil && who.Organization.ID != found.ID {
				fmt.Fprintf(c.stderr, "note: your API token belongs to organization %s: log in again (shardform login --email %s) for a token in %s\n",
					who.Organization.ID, dash(who.User.Email), found.Name)
			}
			if c.quiet {
				return c.ids([]string{found.ID})
			}
			fmt.Fprintf(c.stdout, "Switched to %s (%s, %s)\n", found.Name, found.ID, found.Role)
			return nil
		},
	})
	return orgs
}
