package main

import (
	"fmt"
	"io"
	"net/http"
	"net/url"

	"github.com/spf13/cobra"
)

// upCmd is create → plan → show the changes → confirm → apply → wait.
func (c *cli) upCmd() *cobra.Command {
	var f createFlags
	var yes, follow bool
	cmd := &cobra.Command{
		Use:   "up --provider P --region R --type T --name N [--label k=v]... [--ssh-key FILE] [--yes]",
		Short: "Creates, plans and (once confirmed) applies a provision request, printing progress.",
		Args:  noArgs,
	}
	f.add(cmd)
	cmd.Flags().BoolVarP(&yes, "yes", "y", false, "apply without asking")
	cmd.Flags().BoolVarP(&follow, "follow", "f", false, "stream the Terraform output")
	cmd.RunE = func(cmd *cobra.Command, _ []string) error {
		ctx := cmd.Context()
		body, err := f.body(cmd)
		if err != nil {
			return err
		}
		if err := c.canConfirm(cmd, yes); err != nil {
			return err
		}
		api, err := c.authed()
		if err != nil {
			return err
		}
		// Progress goes to stdout for people, to stderr with --output json
		// or --quiet (stdout is the final request, or its id).
		say := c.stdout
		if c.jsonOut() || c.quiet {
			say = c.stderr
		}
		logs := io.Discard
		if follow {
			logs = say
		}
		var r provisionRequest
		if _, err := api.call(ctx, http.MethodPost, "/v1/provision", body, &r); err != nil {
			return err
		}
		fmt.Fprintf(say, "==> created provision request %s (%s)\n", r.ID, r.Name)
		path := "/v1/provision/" + url.PathEscape(r.ID)
		if _, err := api.call(ctx, http.MethodPost, path+"/plan", nil, &r); err != nil {
			return err
		}
		fmt.Fprintf(say, "==> planning (run %s)\n", r.Run.ID)
		planned, err := c.followRun(ctx, api, r.Run.ID, logs)
		if err != nil {
			return err
		}
		if planned.Status != "succeeded" {
			return c.finish(ctx, api, r.ID, planned)
		}
		printChanges(say, c, planned.Changes)
		if err := c.confirm(cmd, yes, "Apply these changes?"); err != nil {
			return err
		}
		if _, err := api.call(ctx, http.MethodPost, path+"/apply", nil, &r); err != nil {
			return err
		}
		fmt.Fprintf(say, "==> applying (run %s)\n", r.Run.ID)
		applied, err := c.followRun(ctx, api, r.Run.ID, logs)
		if err != nil {
			return err
		}
		return c.finish(ctx, api, r.ID, applied)
	}
	return cmd
}
