package main

import (
	"fmt"
	"net/http"
	"strconv"

	"github.com/spf13/cobra"

	"github.com/shardform/shardform/planner"
)

func (c *cli) plannerCmd() *cobra.Command {
	p := group("planner", "The capacity planner: the cheapest fleets for a need, and the nodes an instance fits on.", "command")
	p.AddCommand(c.plannerRecommendCmd(), c.plannerFitCmd())
	return p
}

func (c *cli) plannerRecommendCmd() *cobra.Command {
	var cpu, memory, disk float64
	var count, players, limit int
	var template, currency string
	var providers, regions stringList
	cmd := &cobra.Command{
		Use:   "recommend (--cpu N --memory GB --disk GB | --template NAME [--players N]) [--count N] [--provider P]...",
		Short: "Ranks single-type fleets by monthly price for a requirement or a workload template.",
		Args:  noArgs,
	}
	f := cmd.Flags()
	f.Float64Var(&cpu, "cpu", 0, "vCPUs per instance")
	f.Float64Var(&memory, "memory", 0, "memory per instance, GB")
	f.Float64Var(&disk, "disk", 0, "disk per instance, GB")
	f.IntVar(&count, "count", 0, "instances (default 1)")
	f.StringVar(&template, "template", "", "a workload template (GET /v1/planner/templates), e.g. valheim")
	f.IntVar(&players, "players", 0, "players, with --template (default: the template's)")
	f.Var(&providers, "provider", "only this provider (repeatable)")
	f.Var(&regions, "region", "only this region (repeatable)")
	f.StringVar(&currency, "currency", "", "the answer's currency (default EUR)")
	f.IntVar(&limit, "limit", 10, "options listed")
	cmd.RunE = func(cmd *cobra.Command, _ []string) error {
		body := map[string]any{"limit": limit}
		path := "/v1/planner/recommend"
		if template != "" {
			if f.Changed("cpu") || f.Changed("memory") || f.Changed("disk") {
				return usageErr(cmd, "planner recommend: --template excludes --cpu, --memory and --disk")
			}
			path = "/v1/planner/recommend-for-template"
			body["template"] = template
			if players > 0 {
				body["players"] = players
			}
		} else {
			if !f.Changed("cpu") || !f.Changed("memory") || !f.Changed("disk") {
				return usageErr(cmd, "planner recommend: --cpu, --memory and --disk (or --template) are required")
			}
			body["cpu"], body["memory_gb"], body["disk_gb"] = cpu, memory, disk
		}
		if count > 0 {
			body["count"] = count
		}
		if len(providers) > 0 {
			body["providers"] = []string(providers)
		}
		if len(regions) > 0 {
			body["regions"] = []string(regions)
		}
		if currency != "" {
			body["currency"] = currency
		}
		api, err := c.authed()
		if err != nil {
			return err
		}
		var res struct {
			Options []struct {
				Rank          int           `json:"rank"`
				Provider      string        `json:"provider"`
				Region        string        `json:"region"`
				Type          string        `json:"type"`
				VCPU          int           `json:"vcpu"`
				MemoryMiB     int64         `json:"memory_mib"`
				DiskGB        int64         `json:"disk_gb"`
				PerNode       int           `json:"instances_per_node"`
				Nodes         int           `json:"nodes"`
				NodeMonthly   planner.Money `json:"node_monthly"`
				TotalMonthly  planner.Money `json:"total_monthly"`
				PerInstanceMo planner.Money `json:"per_instance_monthly"`
			} `json:"options"`
			Rejections []any `json:"rejections"`
		}
		raw, err := api.call(cmd.Context(), http.MethodPost, path, body, &res)
		if err != nil {
			return err
		}
		switch {
		case c.jsonOut():
			return c.writeJSON(raw)
		case c.quiet:
			for _, o := range res.Options {
				fmt.Fprintf(c.stdout, "%s/%s/%s\n", o.Provider, o.Region, o.Type)
			}
			return nil
		}
		rows := make([][]string, len(res.Options))
		for i, o := range res.Options {
			rows[i] = []string{strconv.Itoa(o.Rank), o.Provider, o.Region, o.Type, strconv.Itoa(o.VCPU),
				fmt.Sprintf("%.1f GB", float64(o.MemoryMiB)/1024), fmt.Sprintf("%d GB", o.DiskGB),
				strconv.Itoa(o.Nodes), strconv.Itoa(o.PerNode), monthly(o.TotalMonthly), monthly(o.PerInstanceMo)}
		}
		if err := c.table([]string{"RANK", "PROVIDER", "REGION", "TYPE", "VCPU", "MEMORY", "DISK", "NODES", "PER NODE", "TOTAL", "PER INSTANCE"}, rows); err != nil {
			return err
		}
		if len(res.Rejections) > 0 {
			fmt.Fprintf(c.stdout, "%d types rejected (--output json says why)\n", len(res.Rejections))
		}
		return nil
	}
	return cmd
}

func (c *cli) plannerFitCmd() *cobra.Command {
	var cpu, memory, disk float64
	var region, strategy string
	var labels stringList
	var limit int
	cmd := &cobra.Command{
		Use:   "fit --cpu N --memory GB --disk GB [--region R] [--label k=v]... [--strategy binpack|spread]",
		Short: "Ranks the organization's nodes an instance of this size fits on (suggest-fit).",
		Args:  noArgs,
	}
	f := cmd.Flags()
	f.Float64Var(&cpu, "cpu", 0, "vCPUs of the instance")
	f.Float64Var(&memory, "memory", 0, "memory of the instance, GB")
	f.Float64Var(&disk, "disk", 0, "disk of the instance, GB")
	f.StringVar(&region, "region", "", "only nodes in this region")
	f.Var(&labels, "label", "only nodes with this label k=v (repeatable)")
	f.StringVar(&strategy, "strategy", "", "binpack (default) or spread")
	f.IntVar(&limit, "limit", 20, "fits listed")
	cmd.RunE = func(cmd *cobra.Command, _ []string) error {
		if !f.Changed("cpu") || !f.Changed("memory") || !f.Changed("disk") {
			return usageErr(cmd, "planner fit: --cpu, --memory and --disk are required")
		}
		body := map[string]any{"cpu": cpu, "memory_gb": memory, "disk_gb": disk, "limit": limit}
		if region != "" {
			body["region"] = region
		}
		if strategy != "" {
			body["strategy"] = strategy
		}
		if len(labels) > 0 {
			lbl := map[string]string{}
			for _, l := range labels {
				k, v, ok := cutLabel(l)
				if !ok {
					return usageErr(cmd, "planner fit: --label: %q is not k=v", l)
				}
				lbl[k] = v
			}
			body["labels"] = lbl
		}
		api, err := c.authed()
		if err != nil {
			return err
		}
		var res struct {
			Fits []struct {
				ID       string            `json:"id"`
				Name     string            `json:"name"`
				Region   string            `json:"region"`
				Score    int64             `json:"score"`
				Free     planner.Resources `json:"free"`
				FreeLeft planner.Resources `json:"free_after"`
			} `json:"fits"`
			FitsTotal        int            `json:"fits_total"`
			RejectedTotal    int            `json:"rejected_total"`
			RejectedByReason map[string]int `json:"rejected_by_reason"`
		}
		raw, err := api.call(cmd.Context(), http.MethodPost, "/v1/planner/suggest-fit", body, &res)
		if err != nil {
			return err
		}
		switch {
		case c.jsonOut():
			return c.writeJSON(raw)
		case c.quiet:
			for _, n := range res.Fits {
				fmt.Fprintln(c.stdout, n.ID)
			}
			return nil
		}
		rows := make([][]string, len(res.Fits))
		for i, n := range res.Fits {
			rows[i] = []string{n.Name, n.Region, strconv.FormatInt(n.Score, 10), resources(n.Free), resources(n.FreeLeft)}
		}
		if err := c.table([]string{"NODE", "REGION", "SCORE", "FREE", "FREE AFTER"}, rows); err != nil {
			return err
		}
		fmt.Fprintf(c.stdout, "%d nodes fit, %d rejected %s\n", res.FitsTotal, res.RejectedTotal, reasons(res.RejectedByReason))
		return nil
	}
	return cmd
}

func resources(r planner.Resources) string {
	return fmt.Sprintf("%.1f CPU, %.1f GB, %.0f GB disk", float64(r.MilliCPU)/1000, float64(r.MemoryMiB)/1024, float64(r.DiskMiB)/1024)
}

func reasons(m map[string]int) string {
	if len(m) == 0 {
		return ""
	}
	return "(" + labelList(intsToStrings(m)) + ")"
}

func intsToStrings(m map[string]int) map[string]string {
	out := make(map[string]string, len(m))
	for k, v := range m {
		out[k] = strconv.Itoa(v)
	}
	return out
}
