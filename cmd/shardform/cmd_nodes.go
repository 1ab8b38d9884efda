package main

import (
	"fmt"
	"net/http"
	"net/url"
	"strconv"
	"time"

	"github.com/spf13/cobra"
)

// node is a node as the API answers it.
type node struct {
	ID           string            `json:"id"`
	Name         string            `json:"name"`
	Provider     string            `json:"provider"`
	Region       string            `json:"region"`
	InstanceType string            `json:"instance_type"`
	VCPU         int               `json:"vcpu"`
	MemoryMB     int               `json:"memory_mb"`
	DiskGB       int               `json:"disk_gb"`
	IPv4         string            `json:"ipv4"`
	IPv6         string            `json:"ipv6"`
	Status       string            `json:"status"`
	PowerState   string            `json:"power_state"`
	Labels       map[string]string `json:"labels"`
	ProvisionID  *string           `json:"provision_id"`
	FQDN         string            `json:"fqdn"`
	CreatedAt    time.Time         `json:"created_at"`
}

func (c *cli) nodesCmd() *cobra.Command {
	nodes := group("nodes", "The organization's nodes: list, show, cordon, drain, power, rm.", "command")
	var pg pageFlags
	list := &cobra.Command{
		Use: "list [--page N] [--limit N]", Short: "Lists the nodes.", Args: noArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			api, err := c.authed()
			if err != nil {
				return err
			}
			var list struct {
				Data []node   `json:"data"`
				Meta listMeta `json:"meta"`
			}
			raw, err := api.call(cmd.Context(), http.MethodGet, "/v1/nodes?"+pg.query(url.Values{}), nil, &list)
			if err != nil {
				return err
			}
			switch {
			case c.jsonOut():
				return c.writeJSON(raw)
			case c.quiet:
				ids := make([]string, len(list.Data))
				for i, n := range list.Data {
					ids[i] = n.ID
				}
				return c.ids(ids)
			}
			rows := make([][]string, len(list.Data))
			for i, n := range list.Data {
				rows[i] = []string{n.ID, n.Name, n.Provider, n.Region, n.InstanceType, c.status(n.Status), dash(n.PowerState), dash(n.IPv4), ago(n.CreatedAt, c.now())}
			}
			if err := c.table([]string{"ID", "NAME", "PROVIDER", "REGION", "TYPE", "STATUS", "POWER", "IPV4", "CREATED"}, rows); err != nil {
				return err
			}
			c.more(list.Meta, len(rows))
			return nil
		},
	}
	pg.add(list)
	nodes.AddCommand(list)
	nodes.AddCommand(c.nodeShowCmd("show ID", "Shows a node.", http.MethodGet, ""),
		c.nodeShowCmd("cordon ID", "Stops placing instances on a node.", http.MethodPost, "/cordon"),
		c.nodeShowCmd("uncordon ID", "Places instances on a node again.", http.MethodPost, "/uncordon"),
		c.nodeDrainCmd(), c.nodePowerCmd(), c.nodeRmCmd())
	return nodes
}

// nodeShowCmd is a command answering the node: show, cordon, uncordon.
func (c *cli) nodeShowCmd(use, short, method, suffix string) *cobra.Command {
	return &cobra.Command{
		Use: use, Short: short, Args: exactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			api, err := c.authed()
			if err != nil {
				return err
			}
			var n node
			raw, err := api.call(cmd.Context(), method, "/v1/nodes/"+url.PathEscape(args[0])+suffix, nil, &n)
			if err != nil {
				return err
			}
			switch {
			case c.jsonOut():
				return c.writeJSON(raw)
			case c.quiet:
				return c.ids([]string{n.ID})
			}
			prov := "-"
			if n.ProvisionID != nil {
				prov = *n.ProvisionID
			}
			return c.fields([][2]string{
				{"id", n.ID}, {"name", n.Name}, {"status", c.status(n.Status)}, {"power", dash(n.PowerState)},
				{"provider", n.Provider}, {"region", n.Region}, {"type", n.InstanceType},
				{"size", fmt.Sprintf("%d vCPU, %d MB memory, %d GB disk", n.VCPU, n.MemoryMB, n.DiskGB)},
				{"ipv4", dash(n.IPv4)}, {"ipv6", dash(n.IPv6)}, {"fqdn", dash(n.FQDN)}, {"labels", labelList(n.Labels)},
				{"provision", prov}, {"created", ago(n.CreatedAt, c.now())},
			})
		},
	}
}

func (c *cli) nodeDrainCmd() *cobra.Command {
	var strategy string
	var dryRun bool
	cmd := &cobra.Command{
		Use: "drain ID [--strategy binpack|spread] [--dry-run]", Short: "Cordons a node and moves its instances to others.", Args: exactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			api, err := c.authed()
			if err != nil {
				return err
			}
			body := map[string]any{"dry_run": dryRun}
			if strategy != "" {
				body["strategy"] = strategy
			}
			var m struct {
				ID         string `json:"id"`
				Status     string `json:"status"`
				NodeName   string `json:"node_name"`
				MovesTotal int    `json:"moves_total"`
				MovesLeft  int    `json:"moves_left"`
				Error      string `json:"error"`
			}
			raw, err := api.call(cmd.Context(), http.MethodPost, "/v1/nodes/"+url.PathEscape(args[0])+"/drain", body, &m)
			if err != nil {
				return err
			}
			switch {
			case c.jsonOut():
				return c.writeJSON(raw)
			case c.quiet:
				return c.ids([]string{m.ID})
			}
			return c.fields([][2]string{{"migration", dash(m.ID)}, {"node", m.NodeName}, {"status", c.status(m.Status)},
				{"moves", strconv.Itoa(m.MovesTotal)}, {"left", strconv.Itoa(m.MovesLeft)}, {"error", dash(m.Error)}})
		},
	}
	cmd.Flags().StringVar(&strategy, "strategy", "", "how to rank the target nodes: binpack (default) or spread")
	cmd.Flags().BoolVar(&dryRun, "dry-run", false, "only answer the plan of moves")
	return cmd
}

func (c *cli) nodePowerCmd() *cobra.Command {
	power := group("power", "Starts, stops or reboots a node through its cloud's API.", "command")
	for _, kind := range []string{"start", "stop", "reboot"} {
		var force bool
		cmd := &cobra.Command{
			Use: kind + " ID", Short: "Queues a power " + kind + " of the node.", Args: exactArgs(1),
			RunE: func(cmd *cobra.Command, args []string) error {
				api, err := c.authed()
				if err != nil {
					return err
				}
				path := "/v1/nodes/" + url.PathEscape(args[0]) + "/power/" + kind
				if force {
					path += "?force=true"
				}
				var a struct {
					ID     string `json:"id"`
					Kind   string `json:"kind"`
					Status string `json:"status"`
				}
				raw, err := api.call(cmd.Context(), http.MethodPost, path, nil, &a)
				if err != nil {
					return err
				}
				switch {
				case c.jsonOut():
					return c.writeJSON(raw)
				case c.quiet:
					return c.ids([]string{a.ID})
				}
				fmt.Fprintf(c.stdout, "power %s of node %s: %s (action %s)\n", a.Kind, args[0], c.status(a.Status), a.ID)
				return nil
			},
		}
		if kind == "stop" {
			cmd.Flags().BoolVar(&force, "force", false, "power off at once (no clean shutdown)")
		}
		power.AddCommand(cmd)
	}
	return power
}

func (c *cli) nodeRmCmd() *cobra.Command {
	var force, yes bool
	cmd := &cobra.Command{
		Use: "rm ID [--yes] [--force]", Short: "Deletes a node (--force: even with instances on it).", Args: exactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := c.confirm(cmd, yes, fmt.Sprintf("Delete node %s?", args[0])); err != nil {
				return err
			}
			api, err := c.authed()
			if err != nil {
				return err
			}
			path := "/v1/nodes/" + url.PathEscape(args[0])
			if force {
				path += "?force=true"
			}
			if _, err := api.call(cmd.Context(), http.MethodDelete, path, nil, nil); err != nil {
				return err
			}
			if !c.quiet && !c.jsonOut() {
				fmt.Fprintf(c.stdout, "Deleted node %s\n", args[0])
			}
			return nil
		},
	}
	cmd.Flags().BoolVar(&force, "force", false, "delete a node that still holds instances")
	cmd.Flags().BoolVarP(&yes, "yes", "y", false, "delete without asking")
	return cmd
}
