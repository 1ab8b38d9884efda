package api

import (
	"bytes"
	"context"
	"encoding/json"
	"math"
	"strconv"

	"github.com/gofiber/fiber/v2"

	"github.com/shardform/shardform/capacity"
	"github.com/shardform/shardform/domain"
	"github.com/shardform/shardform/planner"
)

// Planner is what the API needs of the capacity planner (capacity.Service).
type Planner interface {
	Templates(ctx context.Context, p *domain.Principal) ([]planner.Template, error)
	Pricing(ctx context.Context, p *domain.Principal, q capacity.PricingQuery, page domain.Page) (capacity.PricingPage, error)
	Recommend(ctx context.Context, p *domain.Principal, r capacity.RecommendRequest) (planner.Result, error)
	RecommendForTemplate(ctx context.Context, p *domain.Principal, r capacity.TemplateRequest) (capacity.TemplateResult, error)
	SuggestFit(ctx context.Context, p *domain.Principal, r capacity.FitRequest) (capacity.FitResult, error)
	RequestPricingRefresh(ctx context.Context, p *domain.Principal) (capacity.JobInfo, error)
	RequestFleetReport(ctx context.Context, p *domain.Principal, r capacity.FleetReportRequest) (capacity.JobInfo, error)
	LatestFleetReport(ctx context.Context, p *domain.Principal) (json.RawMessage, error)
}

func (s *Server) plannerRoutes(v1 fiber.Router) {
	auth := s.authenticate
	v1.Get("/planner/templates", auth, s.plannerTemplates)
	v1.Get("/planner/pricing", auth, s.plannerPricing)
	v1.Post("/planner/recommend", auth, s.plannerRecommend)
	v1.Post("/planner/recommend-for-template", auth, s.plannerRecommendForTemplate)
	v1.Post("/planner/suggest-fit", auth, s.plannerSuggestFit)
	v1.Post("/planner/pricing/refresh", auth, s.plannerPricingRefresh)
	v1.Post("/planner/fleet-report", auth, s.plannerRequestFleetReport)
	v1.Get("/planner/fleet-report", auth, s.plannerFleetReport)
}

func (s *Server) plannerTemplates(c *fiber.Ctx) error {
	if err := need(principal(c), domain.PermPlannerRead); err != nil {
		return err
	}
	pg, err := page(c)
	if err != nil {
		return err
	}
	ts, err := s.cfg.Planner.Templates(c.UserContext(), principal(c))
	if err != nil {
		return err
	}
	out := []planner.Template{}
	if from := int(pg.Offset()); from < len(ts) {
		out = ts[from:min(from+int(pg.Limit), len(ts))]
	}
	return list(c, out, pg, int64(len(ts)))
}

// pricingBody is a list answer that also says where the prices come from.
type pricingBody struct {
	Data    []planner.InstanceType `json:"data"`
	Meta    listMeta               `json:"meta"`
	Catalog capacity.CatalogInfo   `json:"catalog"`
}

func (s *Server) plannerPricing(c *fiber.Ctx) error {
	if err := need(principal(c), domain.PermPlannerRead); err != nil {
		return err
	}
	pg, err := page(c)
	if err != nil {
		return err
	}
	q := capacity.PricingQuery{Provider: c.Query("provider"), Region: c.Query("region"), Arch: c.Query("arch"), CPUKind: c.Query("cpu_kind")}
	if v := c.Query("min_vcpu"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 0 || n > 1<<16 {
			return domain.Invalid("min_vcpu", "must be a whole number from 0 to %d", 1<<16)
		}
		q.MinVCPU = n
	}
	if v := c.Query("min_memory_gb"); v != "" {
		f, err := strconv.ParseFloat(v, 64)
		if err != nil || math.IsNaN(f) || math.IsInf(f, 0) || f < 0 {
			return domain.Invalid("min_memory_gb", "must be a number of GB, 0 or more")
		}
		q.MinMemoryGB = f
	}
	if v := c.Query("include_deprecated"); v != "" {
		b, err := strconv.ParseBool(v)
		if err != nil {
			return domain.Invalid("include_deprecated", "must be true or false")
		}
		q.IncludeDeprecated = b
	}
	res, err := s.cfg.Planner.Pricing(c.UserContext(), principal(c), q, pg)
	if err != nil {
		return err
	}
	return c.JSON(pricingBody{Data: res.Types, Meta: listMeta{Page: pg.Page, Limit: pg.Limit, Total: res.Total}, Catalog: res.Catalog})
}

func (s *Server) plannerRecommend(c *fiber.Ctx) error {
	readOnly(c)
	if err := need(principal(c), domain.PermPlannerRead); err != nil {
		return err
	}
	var r capacity.RecommendRequest
	if err := decode(c, &r); err != nil {
		return err
	}
	res, err := s.cfg.Planner.Recommend(c.UserContext(), principal(c), r)
	if err != nil {
		return err
	}
	return c.JSON(res)
}

func (s *Server) plannerRecommendForTemplate(c *fiber.Ctx) error {
	readOnly(c)
	if err := need(principal(c), domain.PermPlannerRead); err != nil {
		return err
	}
	var r capacity.TemplateRequest
	if err := decode(c, &r); err != nil {
		return err
	}
	res, err := s.cfg.Planner.RecommendForTemplate(c.UserContext(), principal(c), r)
	if err != nil {
		return err
	}
	return c.JSON(res)
}

func (s *Server) plannerSuggestFit(c *fiber.Ctx) error {
	readOnly(c)
	if err := need(principal(c), domain.PermPlannerRead); err != nil {
		return err
	}
	var r capacity.FitRequest
	if err := decode(c, &r); err != nil {
		return err
	}
	res, err := s.cfg.Planner.SuggestFit(c.UserContext(), principal(c), r)
	if err != nil {
		return err
	}
	return c.JSON(res)
}

// plannerPricingRefresh queues a live pricing refresh (202); the pricing
// endpoint's catalog.live shows its outcome.
func (s *Server) plannerPricingRefresh(c *fiber.Ctx) error {
	if err := need(principal(c), domain.PermPlannerWrite); err != nil {
		return err
	}
	res, err := s.cfg.Planner.RequestPricingRefresh(c.UserContext(), principal(c))
	if err != nil {
		return err
	}
	return c.Status(fiber.StatusAccepted).JSON(res)
}

// plannerRequestFleetReport queues a fleet report (202). The body is
// optional: {currency?, threshold_percent?}.
func (s *Server) plannerRequestFleetReport(c *fiber.Ctx) error {
	if err := need(principal(c), domain.PermPlannerWrite); err != nil {
		return err
	}
	var r capacity.FleetReportRequest
	if len(bytes.TrimSpace(c.Body())) > 0 {
		if err := decode(c, &r); err != nil {
			return err
		}
	}
	res, err := s.cfg.Planner.RequestFleetReport(c.UserContext(), principal(c), r)
	if err != nil {
		return err
	}
	return c.Status(fiber.StatusAccepted).JSON(res)
}

// plannerFleetReport answers the latest stored fleet report (404 before the
// first one).
func (s *Server) plannerFleetReport(c *fiber.Ctx) error {
	if err := need(principal(c), domain.PermPlannerRead); err != nil {
		return err
	}
	raw, err := s.cfg.Planner.LatestFleetReport(c.UserContext(), principal(c))
	if err != nil {
		return err
	}
	c.Set(fiber.HeaderContentType, fiber.MIMEApplicationJSON)
	return c.Send(raw)
}
