package capacity

import (
	"context"
	"encoding/json"
	"fmt"
	"sync"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgtype"

	"github.com/shardform/shardform/planner"
	"github.com/shardform/shardform/store"
)

// nodeCache keeps each organization's node capacities (with their
// aggregated reservations and labels) as the planner sees them, tagged
// with the node-set version they were read at. A trigger bumps the
// version on every change to the organization's nodes (reservations
// included), so a request whose version matches uses the cached slice and
// reads no node row. The slice is never modified once cached: readers
// share it.
type nodeCache struct {
	mu      sync.Mutex
	entries map[uuid.UUID]cachedNodes
}

type cachedNodes struct {
	version int64
	nodes   []planner.NodeCapacity
}

// maxCachedNodeSets bounds the cache; past it the cache starts over.
const maxCachedNodeSets = 256

func newNodeCache() *nodeCache { return &nodeCache{entries: map[uuid.UUID]cachedNodes{}} }

// nodes returns the organization's node capacities, from the cache when
// its version is current, else read in one snapshot with their version.
func (s *Service) nodes(ctx context.Context, org uuid.UUID) ([]planner.NodeCapacity, error) {
	version, err := s.q.GetNodeSetVersion(ctx, s.st.Pool, org)
	if err != nil {
		return nil, fmt.Errorf("suggest fit: node set version: %w", err)
	}
	s.nodeCache.mu.Lock()
	e, ok := s.nodeCache.entries[org]
	s.nodeCache.mu.Unlock()
	if ok && e.version == version {
		return e.nodes, nil
	}
	var nodes []planner.NodeCapacity
	// The rows and their version from one snapshot: a change committed in
	// between cannot be cached under the older version.
	err = pgx.BeginTxFunc(ctx, s.st.Pool, pgx.TxOptions{IsoLevel: pgx.RepeatableRead, AccessMode: pgx.ReadOnly}, func(tx pgx.Tx) error {
		if version, err = s.q.GetNodeSetVersion(ctx, tx, org); err != nil {
			return err
		}
		rows, err := s.q.ListNodeCapacitiesWithLabels(ctx, tx, org)
		if err != nil {
			return err
		}
		nodes = make([]planner.NodeCapacity, len(rows))
		for i, n := range rows {
			if nodes[i], err = s.nodeCapacity(n); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("suggest fit: list nodes: %w", err)
	}
	s.nodeCache.mu.Lock()
	if len(s.nodeCache.entries) >= maxCachedNodeSets {
		clear(s.nodeCache.entries)
	}
	if cur, ok := s.nodeCache.entries[org]; !ok || cur.version < version {
		s.nodeCache.entries[org] = cachedNodes{version: version, nodes: nodes}
	}
	s.nodeCache.mu.Unlock()
	return nodes, nil
}

// effectiveSize is a node's size as placement counts it: while a resize is
// pending (desired_* set), the smaller of both sizes in each resource.
func effectiveSize(vcpu, mem, disk int32, dVcpu, dMem, dDisk pgtype.Int4) planner.Resources {
	if dVcpu.Valid && dMem.Valid && dDisk.Valid {
		vcpu, mem, disk = min(vcpu, dVcpu.Int32), min(mem, dMem.Int32), min(disk, dDisk.Int32)
	}
	return planner.Resources{MilliCPU: int64(vcpu) * 1000, MemoryMiB: int64(mem), DiskMiB: int64(disk) * 1024}
}

// nodeCapacity turns a node row into the planner's view.
func (s *Service) nodeCapacity(n store.ListNodeCapacitiesWithLabelsRow) (planner.NodeCapacity, error) {
	raw := effectiveSize(n.Vcpu, n.MemoryMb, n.DiskGb, n.DesiredVcpu, n.DesiredMemoryMb, n.DesiredDiskGb)
	nc := planner.NodeCapacity{
		ID: n.ID.String(), Name: n.Name, Provider: n.Provider, Region: n.Region,
		Ready:     n.Status != "maintenance" && n.Status != "unreachable",
		Cordoned:  n.Status == "cordoned",
		Stopped:   n.Status == "stopped",
		Capacity:  planner.Usable(raw, s.overhead, 0),
		Reserved:  planner.Resources{MilliCPU: n.ReservedCpuMillis, MemoryMiB: n.ReservedMemoryMb, DiskMiB: n.ReservedDiskGb * 1024},
		Instances: int(n.InstanceCount),
	}
	if len(n.Labels) > 2 { // not "{}"
		if err := json.Unmarshal(n.Labels, &nc.Labels); err != nil {
			return nc, fmt.Errorf("node %s: labels: %w", n.ID, err)
		}
	}
	return nc, nil
}
