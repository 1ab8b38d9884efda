package main

import (
	"github.com/spf13/cobra"
	"github.com/spf13/pflag"
)

const rootLong = `shardform is the shardform control plane and its client, in one binary.

Server (configured by SHARDFORM_* variables; a flag wins over its variable):
  serve          run the API and the workers in one process (default)
  api            run the HTTP API only
  worker         run the River workers only
  migrate        apply database migrations and exit
  health         check a running server's readiness (the image's HEALTHCHECK)

Client (the server from --url, SHARDFORM_URL or the config file; the token
from SHARDFORM_TOKEN or the config file written by shardform login):
  login, logout, whoami, orgs list|switch
  provision create|plan|apply|destroy|list|show|logs|cancel, up
  nodes list|show|cordon|uncordon|drain|power|rm
  planner recommend|fit, dns records list|create|rm
  ssh sign       get a short-lived SSH certificate
  ssh configure  save the server URL and API token in the config file

On a machine to manage:
  node join      register this machine (a registration token) and make it trusted
  node refresh   refresh its CA keys, KRL and host certificates; send a heartbeat

Output: tables for people; --output json prints the API's JSON exactly;
--quiet prints ids only. Colour only on a terminal, never with NO_COLOR.

Exit codes:
  0  done
  1  the API answered an error, or anything else failed
  2  wrong usage (also: a confirmation is needed and there is no terminal)
  3  not found (the API answered 404); node refresh: the token was refused
  4  not authenticated or not allowed (the API answered 401 or 403)`

// root builds the command tree.
func (c *cli) root() *cobra.Command {
	root := &cobra.Command{
		Use:           "shardform",
		Short:         "shardform control plane and client",
		Long:          rootLong,
		SilenceErrors: true,
		SilenceUsage:  true,
		Args: func(cmd *cobra.Command, args []string) error {
			if len(args) > 0 {
				return usageErr(cmd, "unknown command %q", args[0])
			}
			return nil
		},
		RunE:              func(cmd *cobra.Command, _ []string) error { return cmd.Help() },
		PersistentPreRunE: func(cmd *cobra.Command, _ []string) error { return c.checkOutput(cmd) },
	}
	root.SetFlagErrorFunc(func(cmd *cobra.Command, err error) error {
		return &usageError{msg: cmd.CommandPath() + ": " + err.Error(), usage: cmd.UsageString()}
	})
	pf := root.PersistentFlags()
	pf.StringVar(&c.url, "url", "", "the API's address (SHARDFORM_URL; default: the config file's)")
	pf.StringVar(&c.org, "org", "", "the organization (id) to act in, sent as X-Organization-ID (default: the config file's)")
	pf.StringVarP(&c.output, "output", "o", "table", "table or json (json: the API's answer, unchanged)")
	pf.BoolVarP(&c.quiet, "quiet", "q", false, "print ids only")
	root.CompletionOptions.HiddenDefaultCmd = false
	root.AddCommand(c.serverCommands()...)
	root.AddCommand(c.versionCmd(), c.healthCmd(), c.sshCmd(), c.nodeCmd())
	root.AddCommand(c.loginCmd(), c.logoutCmd(), c.whoamiCmd(), c.orgsCmd())
	root.AddCommand(c.provisionCmd(), c.upCmd(), c.nodesCmd(), c.plannerCmd(), c.dnsCmd(), c.searchCmd())
	// Server and node commands do not take the client's global flags:
	// hide them from their help.
	for _, sc := range root.Commands() {
		switch sc.Name() {
		case "serve", "api", "worker", "migrate", "node", "version":
			hideClientFlags(sc)
		}
	}
	return root
}

func hideClientFlags(cmd *cobra.Command) {
	def := cmd.HelpFunc()
	cmd.SetHelpFunc(func(c *cobra.Command, args []string) {
		c.InheritedFlags().VisitAll(func(f *pflag.Flag) { f.Hidden = true })
		def(c, args)
	})
	cmd.SetUsageFunc(func(c *cobra.Command) error {
		c.InheritedFlags().VisitAll(func(f *pflag.Flag) { f.Hidden = true })
		return c.Root().UsageFunc()(c)
	})
}
