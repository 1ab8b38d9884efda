package provision

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"

	"github.com/shardform/shardform/domain"
	"github.com/shardform/shardform/providers"
	"github.com/shardform/shardform/store"
)

// Node is a registered node.
type Node struct {
	ID           uuid.UUID `json:"id"`
	Name         string    `json:"name"`
	Provider     string    `json:"provider"`
	Region       string    `json:"region"`
	InstanceType string    `json:"instance_type"`
	VCPU         int32     `json:"vcpu"`
	MemoryMB     int32     `json:"memory_mb"`
	DiskGB       int32     `json:"disk_gb"`
	IPv4         string    `json:"ipv4"`
	IPv6         string    `json:"ipv6"`
	ServerID     string    `json:"server_id"`
	// Status is ready, cordoned or maintenance, or stopped while the node
	// is powered off (PowerState; the status set before shows again once
	// it is started).
	Status string `json:"status"`
	// PowerState is the power state shardform last set or saw: running or
	// stopped (POST /v1/nodes/{id}/power/...).
	PowerState  string            `json:"power_state"`
	Labels      map[string]string `json:"labels"`
	ProvisionID *uuid.UUID        `json:"provision_id"`
	// FQDN is the node's DNS name (its auto-DNS A or AAAA record), empty
	// without one; DNSRecordIDs are its live DNS records (GET /v1/dns/records/{id}).
	FQDN         string      `json:"fqdn"`
	DNSRecordIDs []uuid.UUID `json:"dns_record_ids"`
	// Reserved is what the instances placed on the node hold of its
	// capacity; InstanceCount how many there are.
	Reserved      NodeReservation `json:"reserved"`
	InstanceCount int32           `json:"instance_count"`
	CreatedAt     time.Time       `json:"created_at"`
	UpdatedAt     time.Time       `json:"updated_at"`

	schedulingStatus string // the stored status (ready, cordoned, maintenance), powered off or not
}

// NodeReservation is the capacity a node's instances reserve.
type NodeReservation struct {
	CPUMillis int64 `json:"cpu_millis"`
	MemoryMB  int64 `json:"memory_mb"`
	DiskGB    int64 `json:"disk_gb"`
}

// Power states of a node as shardform records them.
const (
	PowerRunning = "running"
	PowerStopped = "stopped"
)

// nodeView is a stored node as the API shows it. Stored labels that do not
// decode are shown empty and logged, so the node stays visible and can be
// relabelled.
func (s *Service) nodeView(ctx context.Context, n store.Node) Node {
	out := Node{ID: n.ID, Name: n.Name, Provider: n.Provider, Region: n.Region, InstanceType: n.InstanceType,
		VCPU: n.Vcpu, MemoryMB: n.MemoryMb, DiskGB: n.DiskGb, IPv4: n.Ipv4, IPv6: n.Ipv6, ServerID: n.ServerID,
		Status: n.Status, PowerState: n.PowerState, schedulingStatus: n.Status, Labels: map[string]string{}, DNSRecordIDs: []uuid.UUID{}, CreatedAt: n.CreatedAt, UpdatedAt: n.UpdatedAt,
		Reserved:      NodeReservation{CPUMillis: n.ReservedCpuMillis, MemoryMB: n.ReservedMemoryMb, DiskGB: n.ReservedDiskGb},
		InstanceCount: n.InstanceCount}
	if n.PowerState == PowerStopped {
		out.Status = PowerStopped
	}
	if err := json.Unmarshal(n.Labels, &out.Labels); err != nil {
		out.Labels = map[string]string{}
		s.log.ErrorContext(ctx, "node has unreadable labels: shown without them",
			slog.String("node_id", n.ID.String()), slog.String("organization_id", n.OrganizationID.String()), slog.Any("error", err))
	}
	if n.ProvisionID.Valid {
		id := n.ProvisionID.UUID
		out.ProvisionID = &id
	}
	return out
}

// ListNodes lists the organization's nodes.
func (s *Service) ListNodes(ctx context.Context, p *domain.Principal, f Filter, page domain.Page) ([]Node, int64, error) {
	if err := need(p, domain.PermNodesRead); err != nil {
		return nil, 0, err
	}
	total, err := s.q.CountNodes(ctx, s.st.Pool, store.CountNodesParams{OrganizationID: p.OrgID, Status: optional(f.Status), Provider: optional(f.Provider)})
	if err != nil {
		return nil, 0, fmt.Errorf("count nodes: %w", err)
	}
	rows, err := s.q.ListNodes(ctx, s.st.Pool, store.ListNodesParams{OrganizationID: p.OrgID, Status: optional(f.Status), Provider: optional(f.Provider), Lim: page.Limit, Off: page.Offset()})
	if err != nil {
		return nil, 0, fmt.Errorf("list nodes: %w", err)
	}
	out := make([]Node, len(rows))
	for i, n := range rows {
		out[i] = s.nodeView(ctx, n)
	}
	if err := s.withDNS(ctx, p.OrgID, out); err != nil {
		return nil, 0, err
	}
	return out, total, nil
}

// GetNode returns one node.
func (s *Service) GetNode(ctx context.Context, p *domain.Principal, id uuid.UUID) (Node, error) {
	if err := need(p, domain.PermNodesRead); err != nil {
		return Node{}, err
	}
	n, err := s.q.GetNode(ctx, s.st.Pool, store.GetNodeParams{OrganizationID: p.OrgID, ID: id})
	if store.IsNoRows(err) {
		return Node{}, domain.NotFound("node")
	}
	if err != nil {
		return Node{}, fmt.Errorf("get node %s: %w", id, err)
	}
	out := []Node{s.nodeView(ctx, n)}
	if err := s.withDNS(ctx, p.OrgID, out); err != nil {
		return Node{}, err
	}
	return out[0], nil
}

// NodeUpdate is the body of PUT /v1/nodes/{id}: absent fields stay.
type NodeUpdate struct {
	Name   *string            `json:"name"`
	Status *string            `json:"status"`
	Labels *map[string]string `json:"labels"`
}

// UpdateNode renames, cordons (status) or relabels a node.
func (s *Service) UpdateNode(ctx context.Context, p *domain.Principal, id uuid.UUID, u NodeUpdate) (Node, error) {
	if err := need(p, domain.PermNodesWrite); err != nil {
		return Node{}, err
	}
	cur, err := s.GetNode(ctx, p, id)
	if err != nil {
		return Node{}, err
	}
	cur.Status = cur.schedulingStatus
	if u.Name != nil {
		if !dnsLabel.MatchString(*u.Name) {
			return Node{}, domain.Invalid("name", "must be a DNS label: 1-63 lowercase letters, digits and hyphens")
		}
		cur.Name = *u.Name
	}
	if u.Status != nil {
		switch *u.Status {
		case "ready", "cordoned", "maintenance":
		default:
			return Node{}, domain.Invalid("status", "must be ready, cordoned or maintenance")
		}
		cur.Status = *u.Status
	}
	if u.Labels != nil {
		if _, err := s.validate(CreateRequest{Provider: cur.Provider, Region: cur.Region, InstanceType: cur.InstanceType, Name: cur.Name, Labels: *u.Labels}); err != nil {
			return Node{}, err
		}
		cur.Labels = *u.Labels
	}
	labels, _ := json.Marshal(cur.Labels)
	n, err := s.q.UpdateNode(ctx, s.st.Pool, store.UpdateNodeParams{OrganizationID: p.OrgID, ID: id, Name: cur.Name, Status: cur.Status, Labels: labels})
	if store.IsNoRows(err) {
		return Node{}, domain.NotFound("node")
	}
	if err != nil {
		return Node{}, fmt.Errorf("update node %s: %w", id, err)
	}
	out := []Node{s.nodeView(ctx, n)}
	if err := s.withDNS(ctx, p.OrgID, out); err != nil {
		return Node{}, err
	}
	return out[0], nil
}

// DeleteNode unregisters a node. A node created by a live provision request
// is removed by deleting that request (which destroys the machine); this
// refuses, so no machine is left running unmanaged. A node that still
// holds instances is 409 unless force (they are deleted with it).
func (s *Service) DeleteNode(ctx context.Context, p *domain.Principal, id uuid.UUID, force bool) error {
	if err := need(p, domain.PermNodesWrite); err != nil {
		return err
	}
	n, err := s.GetNode(ctx, p, id)
	if err != nil {
		return err
	}
	if n.ProvisionID != nil {
		return domain.Conflict("node was created by provision request %s: DELETE /v1/provision/%s destroys it", n.ProvisionID, n.ProvisionID)
	}
	err = s.st.InTx(ctx, func(tx pgx.Tx) error {
		// Locked as a placement locks it: none lands between check and delete.
		locked, err := s.q.LockPlacementNode(ctx, tx, store.LockPlacementNodeParams{OrganizationID: p.OrgID, ID: id})
		if store.IsNoRows(err) {
			return domain.NotFound("node")
		}
		if err != nil {
			return err
		}
		if locked.InstanceCount > 0 && !force {
			return holdsInstances(locked.Name, id, locked.InstanceCount, "DELETE /v1/nodes/"+id.String())
		}
		// Its auto-DNS records go with it (a destroy does the same for
		// the nodes of provision requests).
		if err := s.nodeDeleted(ctx, tx, p.OrgID, id); err != nil {
			return err
		}
		_, err = s.q.DeleteNode(ctx, tx, store.DeleteNodeParams{OrganizationID: p.OrgID, ID: id})
		return err
	})
	if err != nil {
		return fmt.Errorf("delete node %s: %w", id, err)
	}
	return nil
}

// ProviderInfo is a driver's catalog.
type ProviderInfo struct {
	Name          string                   `json:"name"`
	Regions       []providers.Region       `json:"regions"`
	InstanceTypes []providers.InstanceType `json:"instance_types"`
}

// Providers lists every configured driver with its catalog.
func (s *Service) Providers() []ProviderInfo {
	var out []ProviderInfo
	for _, name := range s.drivers.Names() {
		d, _ := s.drivers.Get(name)
		out = append(out, ProviderInfo{Name: name, Regions: d.Regions(), InstanceTypes: d.InstanceTypes()})
	}
	return out
}
