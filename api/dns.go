package api

import (
	"context"
	"strings"

	"github.com/gofiber/fiber/v2"
	"github.com/google/uuid"

	"github.com/shardform/shardform/dns"
	"github.com/shardform/shardform/domain"
)

// DNS is what the API needs of the DNS domain (dns.Service).
type DNS interface {
	ListZones(ctx context.Context, p *domain.Principal, credentialID *uuid.UUID) ([]dns.Zone, error)
	ZoneRecords(ctx context.Context, p *domain.Principal, zoneID string, credentialID *uuid.UUID, page domain.Page) ([]dns.ZoneRecord, int64, error)
	List(ctx context.Context, p *domain.Principal, f dns.Filter, page domain.Page) ([]dns.Record, int64, error)
	Get(ctx context.Context, p *domain.Principal, id uuid.UUID) (dns.Record, error)
	Create(ctx context.Context, p *domain.Principal, r dns.CreateRequest) (dns.Record, error)
	Update(ctx context.Context, p *domain.Principal, id uuid.UUID, r dns.UpdateRequest) (dns.Record, error)
	Delete(ctx context.Context, p *domain.Principal, id uuid.UUID) (dns.Record, error)
	GetAutoConfig(ctx context.Context, p *domain.Principal) (dns.AutoConfig, error)
	PutAutoConfig(ctx context.Context, p *domain.Principal, r dns.AutoConfigRequest) (dns.AutoConfig, error)
	RequestReconcile(ctx context.Context, p *domain.Principal) (dns.JobInfo, error)
	LastReconcile(ctx context.Context, p *domain.Principal) (dns.Report, error)
}

func (s *Server) dnsRoutes(v1 fiber.Router) {
	auth := s.authenticate
	v1.Get("/dns/zones", auth, s.listDNSZones)
	v1.Get("/dns/zones/:zone_id/records", auth, s.listDNSZoneRecords)
	v1.Get("/dns/records", auth, s.listDNSRecords)
	v1.Post("/dns/records", auth, s.createDNSRecord)
	v1.Get("/dns/records/:id", auth, s.getDNSRecord)
	v1.Put("/dns/records/:id", auth, s.updateDNSRecord)
	v1.Delete("/dns/records/:id", auth, s.deleteDNSRecord)
	v1.Get("/dns/auto-config", auth, s.getDNSAutoConfig)
	v1.Put("/dns/auto-config", auth, s.putDNSAutoConfig)
	v1.Post("/dns/reconcile", auth, s.reconcileDNS)
	v1.Get("/dns/reconcile", auth, s.lastDNSReconcile)
}

// credentialQuery reads the optional credential_id query parameter
// (checkQuery has checked its form).
func credentialQuery(c *fiber.Ctx) (*uuid.UUID, error) {
	v := c.Query("credential_id")
	if v == "" {
		return nil, nil
	}
	id, err := domain.ParseID("credential_id", v)
	if err != nil {
		return nil, err
	}
	return &id, nil
}

func (s *Server) listDNSZones(c *fiber.Ctx) error {
	if err := need(principal(c), domain.PermDNSRead); err != nil {
		return err
	}
	if err := checkQuery(c); err != nil {
		return err
	}
	cred, err := credentialQuery(c)
	if err != nil {
		return err
	}
	zones, err := s.cfg.DNS.ListZones(c.UserContext(), principal(c), cred)
	if err != nil {
		return err
	}
	return c.JSON(dnsZonesBody{Data: zones})
}

func (s *Server) listDNSZoneRecords(c *fiber.Ctx) error {
	if err := need(principal(c), domain.PermDNSRead); err != nil {
		return err
	}
	pg, err := page(c)
	if err != nil {
		return err
	}
	zoneID := c.Params("zone_id")
	if err := dns.CheckZoneID("zone_id", zoneID); err != nil {
		return err
	}
	cred, err := credentialQuery(c)
	if err != nil {
		return err
	}
	out, total, err := s.cfg.DNS.ZoneRecords(c.UserContext(), principal(c), zoneID, cred, pg)
	if err != nil {
		return err
	}
	return list(c, out, pg, total)
}

func (s *Server) listDNSRecords(c *fiber.Ctx) error {
	if err := need(principal(c), domain.PermDNSRead); err != nil {
		return err
	}
	pg, err := page(c)
	if err != nil {
		return err
	}
	f := dns.Filter{ZoneID: c.Query("zone"), Type: c.Query("type"), Name: c.Query("name"), Status: c.Query("status")}
	if f.ZoneID != "" {
		if err := dns.CheckZoneID("zone", f.ZoneID); err != nil {
			return err
		}
	}
	if f.Type != "" && !contains(dns.Types, strings.ToUpper(f.Type)) {
		return domain.Invalid("type", "must be one of %s", strings.Join(dns.Types, ", "))
	}
	if f.Status != "" && !contains(dnsStatuses, f.Status) {
		return domain.Invalid("status", "must be one of %s", strings.Join(dnsStatuses, ", "))
	}
	if v := c.Query("node"); v != "" {
		id, err := domain.ParseID("node", v)
		if err != nil {
			return err
		}
		f.NodeID = uuid.NullUUID{UUID: id, Valid: true}
	}
	out, total, err := s.cfg.DNS.List(c.UserContext(), principal(c), f, pg)
	if err != nil {
		return err
	}
	return list(c, out, pg, total)
}

var dnsStatuses = []string{dns.StatusPending, dns.StatusSynced, dns.StatusFailed, dns.StatusDeleting, dns.StatusDeleted}

func contains(list []string, v string) bool {
	for _, x := range list {
		if x == v {
			return true
		}
	}
	return false
}

func (s *Server) createDNSRecord(c *fiber.Ctx) error {
	if err := need(principal(c), domain.PermDNSWrite); err != nil {
		return err
	}
	var r dns.CreateRequest
	if err := decode(c, &r); err != nil {
		return err
	}
	rec, err := s.cfg.DNS.Create(c.UserContext(), principal(c), r)
	if err != nil {
		return err
	}
	setAudit(c, rec.ID.String(), nil)
	return c.Status(fiber.StatusAccepted).JSON(rec)
}

func (s *Server) getDNSRecord(c *fiber.Ctx) error {
	id, err := pathID(c, "id", "dns record")
	if err != nil {
		return err
	}
	rec, err := s.cfg.DNS.Get(c.UserContext(), principal(c), id)
	if err != nil {
		return err
	}
	return c.JSON(rec)
}

func (s *Server) updateDNSRecord(c *fiber.Ctx) error {
	if err := need(principal(c), domain.PermDNSWrite); err != nil {
		return err
	}
	id, err := pathID(c, "id", "dns record")
	if err != nil {
		return err
	}
	var r dns.UpdateRequest
	if err := decode(c, &r); err != nil {
		return err
	}
	rec, err := s.cfg.DNS.Update(c.UserContext(), principal(c), id, r)
	if err != nil {
		return err
	}
	return c.Status(fiber.StatusAccepted).JSON(rec)
}

func (s *Server) deleteDNSRecord(c *fiber.Ctx) error {
	if err := need(principal(c), domain.PermDNSWrite); err != nil {
		return err
	}
	id, err := pathID(c, "id", "dns record")
	if err != nil {
		return err
	}
	rec, err := s.cfg.DNS.Delete(c.UserContext(), principal(c), id)
	if err != nil {
		return err
	}
	return c.Status(fiber.StatusAccepted).JSON(rec)
}

func (s *Server) getDNSAutoConfig(c *fiber.Ctx) error {
	if err := checkQuery(c); err != nil {
		return err
	}
	cfg, err := s.cfg.DNS.GetAutoConfig(c.UserContext(), principal(c))
	if err != nil {
		return err
	}
	return c.JSON(cfg)
}

func (s *Server) putDNSAutoConfig(c *fiber.Ctx) error {
	if err := need(principal(c), domain.PermDNSWrite); err != nil {
		return err
	}
	var r dns.AutoConfigRequest
	if err := decode(c, &r); err != nil {
		return err
	}
	cfg, err := s.cfg.DNS.PutAutoConfig(c.UserContext(), principal(c), r)
	if err != nil {
		return err
	}
	return c.JSON(cfg)
}

func (s *Server) reconcileDNS(c *fiber.Ctx) error {
	if err := checkQuery(c); err != nil {
		return err
	}
	info, err := s.cfg.DNS.RequestReconcile(c.UserContext(), principal(c))
	if err != nil {
		return err
	}
	return c.Status(fiber.StatusAccepted).JSON(info)
}

func (s *Server) lastDNSReconcile(c *fiber.Ctx) error {
	if err := checkQuery(c); err != nil {
		return err
	}
	rep, err := s.cfg.DNS.LastReconcile(c.UserContext(), principal(c))
	if err != nil {
		return err
	}
	return c.JSON(rep)
}
