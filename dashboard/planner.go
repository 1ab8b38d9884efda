package dashboard

import (
	"errors"
	"net/http"
	"net/url"
	"strconv"
	"strings"

	"github.com/gofiber/fiber/v2"

	"github.com/shardform/shardform/capacity"
	"github.com/shardform/shardform/planner"
)

// bar is one bar of a server-rendered SVG bar chart.
type bar struct {
	Label string
	Value string // as shown
	Y, W  int    // position and width in the chart's units
	Class string
}

// chart is a horizontal bar chart.
type chart struct {
	ID     string
	Title  string
	Bars   []bar
	Height int
}

const (
	chartWidth = 420 // the bars' area, right of the labels
	barStep    = 26
)

// barChart scales values (≥ 0) to the chart's width.
func barChart(id, title string, labels []string, values []float64, shown []string, classes []string) chart {
	var top float64
	for _, v := range values {
		top = max(top, v)
	}
	c := chart{ID: id, Title: title, Height: len(values)*barStep + 10}
	for i, v := range values {
		w := 0
		if top > 0 {
			w = int(v / top * chartWidth)
		}
		b := bar{Label: labels[i], Value: shown[i], Y: i*barStep + 5, W: max(w, 1)}
		if classes != nil {
			b.Class = classes[i]
		}
		c.Bars = append(c.Bars, b)
	}
	return c
}

type plannerData struct {
	Templates []planner.Template
	Form      url.Values
	Result    *planner.Result
	Chart     *chart
	Fleet     *capacity.FleetReport
	FleetErr  string
	FleetBars *chart
}

func floatParam(q url.Values, name string) (*float64, error) {
	v := strings.TrimSpace(q.Get(name))
	if v == "" {
		return nil, nil
	}
	f, err := strconv.ParseFloat(v, 64)
	if err != nil {
		return nil, &APIError{Status: http.StatusBadRequest, Message: name + ": must be a number"}
	}
	return &f, nil
}

// plannerPage: the recommend form (a GET, so a result can be linked to;
// the API's recommend is a computation that changes nothing), its ranked
// options with a chart of their monthly cost, and the latest fleet report.
func (d *Dashboard) plannerPage(c *fiber.Ctx, s *session, v *view) error {
	v.Title, v.Nav = "Planner", "planner"
	q, err := url.ParseQuery(string(c.Request().URI().QueryString()))
	if err != nil {
		return &APIError{Status: http.StatusBadRequest, Message: "bad query"}
	}
	data := &plannerData{Form: q}
	var ts struct {
		Data []planner.Template `json:"data"`
	}
	if err := d.do(c, s, call{method: "GET", path: "/v1/planner/templates", query: url.Values{"limit": {"100"}}, out: &ts}); err != nil {
		return err
	}
	data.Templates = ts.Data
	if q.Get("go") != "" {
		if err := d.recommend(c, s, q, data); err != nil {
			var aerr *APIError
			if !errors.As(err, &aerr) || aerr.Status >= 500 || aerr.Status == http.StatusUnauthorized {
				return err
			}
			v.Error = aerr.Message
		}
	}
	var fleet capacity.FleetReport
	if err := d.do(c, s, call{method: "GET", path: "/v1/planner/fleet-report", out: &fleet}); err != nil {
		var aerr *APIError
		if !errors.As(err, &aerr) || aerr.Status >= 500 || aerr.Status == http.StatusUnauthorized {
			return err
		}
		data.FleetErr = aerr.Message
	} else {
		data.Fleet = &fleet
		nodes := fleet.Nodes
		if len(nodes) > 40 {
			nodes = nodes[:40]
		}
		var labels, shown []string
		var values []float64
		for _, n := range nodes {
			u := max(n.Utilisation.CPU, n.Utilisation.Memory, n.Utilisation.Disk)
			labels = append(labels, n.Name)
			values = append(values, u)
			shown = append(shown, strconv.Itoa(int(u*100+0.5))+" %")
		}
		ch := barChart("chart-fleet", "Utilisation per node (the highest of CPU, memory and disk)", labels, values, shown, nil)
		data.FleetBars = &ch
	}
	v.Data = data
	return d.render(c, "planner", v)
}

func (d *Dashboard) recommend(c *fiber.Ctx, s *session, q url.Values, data *plannerData) error {
	count, _ := strconv.Atoi(q.Get("count"))
	var countp *int
	if count > 0 {
		countp = &count
	}
	var choices capacity.Choices
	if p := strings.TrimSpace(q.Get("provider")); p != "" {
		choices.Providers = []string{p}
	}
	var res planner.Result
	if t := q.Get("template"); t != "" {
		players, _ := strconv.Atoi(q.Get("players"))
		var tr capacity.TemplateResult
		if err := d.do(c, s, call{method: "POST", path: "/v1/planner/recommend-for-template",
			body: capacity.TemplateRequest{Template: t, Players: players, Count: countp, Choices: choices}, out: &tr}); err != nil {
			return err
		}
		res = tr.Result
	} else {
		cpu, err := floatParam(q, "cpu")
		if err != nil {
			return err
		}
		mem, err := floatParam(q, "memory_gb")
		if err != nil {
			return err
		}
		disk, err := floatParam(q, "disk_gb")
		if err != nil {
			return err
		}
		if err := d.do(c, s, call{method: "POST", path: "/v1/planner/recommend",
			body: capacity.RecommendRequest{CPU: cpu, MemoryGB: mem, DiskGB: disk, Count: countp, Choices: choices}, out: &res}); err != nil {
			return err
		}
	}
	data.Result = &res
	opts := res.Options
	if len(opts) > 15 {
		opts = opts[:15]
	}
	var labels, shown []string
	var values []float64
	for _, o := range opts {
		f, _ := strconv.ParseFloat(o.TotalMonthly.Amount(), 64)
		labels = append(labels, "#"+strconv.Itoa(o.Rank)+" "+o.Provider+" "+o.Type)
		values = append(values, f)
		shown = append(shown, o.TotalMonthly.String())
	}
	ch := barChart("chart-cost", "Total monthly cost per option", labels, values, shown, nil)
	data.Chart = &ch
	return nil
}

// plannerFleetReport queues a new fleet report (POST /v1/planner/fleet-report).
func (d *Dashboard) plannerFleetReport(c *fiber.Ctx, s *session, v *view) error {
	if err := d.do(c, s, call{method: "POST", path: "/v1/planner/fleet-report"}); err != nil {
		var aerr *APIError
		if !errors.As(err, &aerr) || aerr.Status >= 500 || aerr.Status == http.StatusUnauthorized {
			return err
		}
		d.flash(c, aerr.Message)
	} else {
		d.flash(c, "Fleet report queued: reload in a moment.")
	}
	return redirect(c, "/planner")
}
