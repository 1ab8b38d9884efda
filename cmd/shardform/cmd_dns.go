package main

import (
	"fmt"
	"net/http"
	"net/url"
	"strconv"

	"github.com/spf13/cobra"
)

// dnsRecord is a DNS record as the API answers it.
type dnsRecord struct {
	ID       string  `json:"id"`
	ZoneID   string  `json:"zone_id"`
	ZoneName string  `json:"zone_name"`
	Type     string  `json:"type"`
	Name     string  `json:"name"`
	Content  string  `json:"content"`
	TTL      int     `json:"ttl"`
	Proxied  bool    `json:"proxied"`
	NodeID   *string `json:"node_id"`
	Auto     bool    `json:"auto"`
	Status   string  `json:"status"`
}

func (c *cli) dnsCmd() *cobra.Command {
	dns := group("dns", "DNS records shardform owns (Cloudflare).", "command")
	records := group("records", "Lists, creates and removes DNS records.", "command")
	records.AddCommand(c.dnsListCmd(), c.dnsCreateCmd(), c.dnsRmCmd())
	dns.AddCommand(records)
	return dns
}

func (c *cli) dnsListCmd() *cobra.Command {
	var zone, typ, name, status, nodeID string
	var pg pageFlags
	cmd := &cobra.Command{
		Use: "list [--zone ID] [--type T] [--name N] [--status S] [--node ID]", Short: "Lists the DNS records.", Args: noArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			api, err := c.authed()
			if err != nil {
				return err
			}
			q := url.Values{}
			for k, v := range map[string]string{"zone": zone, "type": typ, "name": name, "status": status, "node": nodeID} {
				if v != "" {
					q.Set(k, v)
				}
			}
			var list struct {
				Data []dnsRecord `json:"data"`
				Meta listMeta    `json:"meta"`
			}
			raw, err := api.call(cmd.Context(), http.MethodGet, "/v1/dns/records?"+pg.query(q), nil, &list)
			if err != nil {
				return err
			}
			switch {
			case c.jsonOut():
				return c.writeJSON(raw)
			case c.quiet:
				ids := make([]string, len(list.Data))
				for i, r := range list.Data {
					ids[i] = r.ID
				}
				return c.ids(ids)
			}
			rows := make([][]string, len(list.Data))
			for i, r := range list.Data {
				rows[i] = []string{r.ID, r.Type, r.Name, dash(r.ZoneName), r.Content, strconv.Itoa(r.TTL), c.status(r.Status)}
			}
			if err := c.table([]string{"ID", "TYPE", "NAME", "ZONE", "CONTENT", "TTL", "STATUS"}, rows); err != nil {
				return err
			}
			c.more(list.Meta, len(rows))
			return nil
		},
	}
	pg.add(cmd)
	f := cmd.Flags()
	f.StringVar(&zone, "zone", "", "only this zone (id)")
	f.StringVar(&typ, "type", "", "only this type (A, AAAA, CNAME, ...)")
	f.StringVar(&name, "name", "", "only this name")
	f.StringVar(&status, "status", "", "only this status")
	f.StringVar(&nodeID, "node", "", "only this node's records")
	return cmd
}

func (c *cli) dnsCreateCmd() *cobra.Command {
	var zone, typ, name, content, nodeID, credential string
	var ttl, priority int
	var proxied, adopt bool
	cmd := &cobra.Command{
		Use:   "create --zone ID --type T --name N [--content C] [--ttl S] [--node ID] [--proxied]",
		Short: "Creates a DNS record (queued: it syncs to Cloudflare).",
		Args:  noArgs,
	}
	f := cmd.Flags()
	f.StringVar(&zone, "zone", "", "the zone's id")
	f.StringVar(&typ, "type", "", "A, AAAA, CNAME, TXT, MX, SRV or CAA")
	f.StringVar(&name, "name", "", `the name, relative to the zone ("www", "@") or fully qualified`)
	f.StringVar(&content, "content", "", "the content (with --node, an A or AAAA record gets the node's address)")
	f.IntVar(&ttl, "ttl", 0, "seconds (1: automatic)")
	f.IntVar(&priority, "priority", 0, "MX or SRV priority")
	f.BoolVar(&proxied, "proxied", false, "through Cloudflare's proxy")
	f.BoolVar(&adopt, "adopt", false, "take over an existing record without shardform's marker")
	f.StringVar(&nodeID, "node", "", "the node the record points at")
	f.StringVar(&credential, "credential", "", "the cloudflare credential (default: the organization's default)")
	cmd.RunE = func(cmd *cobra.Command, _ []string) error {
		for _, r := range []struct{ flag, v string }{{"zone", zone}, {"type", typ}, {"name", name}} {
			if r.v == "" {
				return usageErr(cmd, "dns records create: --%s is required", r.flag)
			}
		}
		body := map[string]any{"zone_id": zone, "type": typ, "name": name, "content": content}
		if f.Changed("ttl") {
			body["ttl"] = ttl
		}
		if f.Changed("priority") {
			body["priority"] = priority
		}
		if f.Changed("proxied") {
			body["proxied"] = proxied
		}
		if adopt {
			body["adopt"] = true
		}
		if nodeID != "" {
			body["node_id"] = nodeID
		}
		if credential != "" {
			body["credential_id"] = credential
		}
		return c.dnsAnswer(cmd, http.MethodPost, "/v1/dns/records", body)
	}
	return cmd
}

func (c *cli) dnsRmCmd() *cobra.Command {
	return &cobra.Command{
		Use: "rm ID", Short: "Deletes a DNS record (queued: it is removed from Cloudflare).", Args: exactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			return c.dnsAnswer(cmd, http.MethodDelete, "/v1/dns/records/"+url.PathEscape(args[0]), nil)
		},
	}
}

// dnsAnswer sends a record's change and prints the record.
func (c *cli) dnsAnswer(cmd *cobra.Command, method, path string, body any) error {
	api, err := c.authed()
	if err != nil {
		return err
	}
	var r dnsRecord
	raw, err := api.call(cmd.Context(), method, path, body, &r)
	if err != nil {
		return err
	}
	switch {
	case c.jsonOut():
		return c.writeJSON(raw)
	case c.quiet:
		return c.ids([]string{r.ID})
	}
	fmt.Fprintf(c.stdout, "%s %s %s -> %s: %s\n", r.ID, r.Type, r.Name, dash(r.Content), c.status(r.Status))
	return nil
}
