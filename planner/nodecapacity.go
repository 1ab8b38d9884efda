package planner

import (
	"encoding/json"
	"math"
	"slices"
)

// NodeCapacity is one node as the planner sees it: its capacity and the
// aggregate of the reservations of the instances placed on it. The store
// keeps the aggregate up to date, so fitting never reads instance rows.
type NodeCapacity struct {
	ID       string            `json:"id"`
	Name     string            `json:"name"`
	Provider string            `json:"provider"`
	Region   string            `json:"region"`
	Labels   map[string]string `json:"labels,omitempty"`
	Ready    bool              `json:"ready"`
	Cordoned bool              `json:"cordoned"`
	// Stopped: the node is powered off (a power action stopped it).
	Stopped bool `json:"stopped,omitempty"`
	// Capacity is what game servers may use (allocatable: after the OS
	// overhead).
	Capacity  Resources `json:"capacity"`
	Reserved  Resources `json:"reserved"`  // sum of the placed instances' reservations
	Instances int       `json:"instances"` // how many are placed
}

// Free is capacity minus reservations (negative when overcommitted).
func (n NodeCapacity) Free() Resources { return n.Capacity.Sub(n.Reserved) }

// Strategy chooses how SuggestFit ranks nodes.
type Strategy string

// Strategies.
const (
	// StrategyBinpack fills the fullest nodes first (Kubernetes'
	// MostAllocated), so other nodes empty out and can be removed. The
	// default for game-server fleets.
	StrategyBinpack Strategy = "binpack"
	// StrategySpread prefers the emptiest nodes (Kubernetes' LeastAllocated).
	StrategySpread Strategy = "spread"
)

// FitRequest asks where one instance needing Need should go.
type FitRequest struct {
	Need     Resources         `json:"need"`
	Region   string            `json:"region,omitempty"` // only nodes in this region; empty: any
	Labels   map[string]string `json:"labels,omitempty"` // nodes must carry every one of these labels
	Strategy Strategy          `json:"strategy"`         // empty: binpack
}

// RejectReasons is the set of reasons a node cannot take an instance. It is
// a bit set so rejecting 10,000 nodes allocates nothing; it renders as a
// list of codes.
type RejectReasons uint16

// Reasons a node is rejected.
const (
	RejectNotReady RejectReasons = 1 << iota
	RejectCordoned
	RejectWrongRegion
	RejectLabelMismatch
	RejectInsufficientCPU
	RejectInsufficientMemory
	RejectInsufficientDisk
	RejectStopped
)

// Codes lists the reasons as codes ("insufficient_memory", "cordoned").
func (r RejectReasons) Codes() []string {
	var out []string
	for reason := RejectNotReady; reason <= RejectStopped; reason <<= 1 {
		if r&reason != 0 {
			out = append(out, reason.code())
		}
	}
	return out
}

func (r RejectReasons) code() string {
	switch r {
	case RejectNotReady:
		return "not_ready"
	case RejectCordoned:
		return "cordoned"
	case RejectWrongRegion:
		return "wrong_region"
	case RejectLabelMismatch:
		return "label_mismatch"
	case RejectInsufficientCPU:
		return "insufficient_cpu"
	case RejectInsufficientMemory:
		return "insufficient_memory"
	case RejectInsufficientDisk:
		return "insufficient_disk"
	case RejectStopped:
		return "stopped"
	}
	return "unknown"
}

// Has reports whether r includes reason.
func (r RejectReasons) Has(reason RejectReasons) bool { return r&reason != 0 }

// MarshalJSON renders the codes.
func (r RejectReasons) MarshalJSON() ([]byte, error) { return json.Marshal(r.Codes()) }

// NodeFit is a node that can take the instance, with its score.
type NodeFit struct {
	ID        string    `json:"id"`
	Name      string    `json:"name"`
	Region    string    `json:"region"`
	Score     int64     `json:"score"`      // 0–100, by the strategy
	Balanced  int64     `json:"balanced"`   // 0–100, BalancedAllocation: the tie-break
	Free      Resources `json:"free"`       // before placing the instance
	FreeAfter Resources `json:"free_after"` // after placing it
}

// NodeRejection is a node that cannot take the instance, and why.
type NodeRejection struct {
	ID      string        `json:"id"`
	Name    string        `json:"name"`
	Reasons RejectReasons `json:"reasons"`
	Free    Resources     `json:"free"`
}

// FitResult ranks the nodes that can take an instance and lists every
// other node with its reasons.
type FitResult struct {
	Strategy Strategy        `json:"strategy"`
	Need     Resources       `json:"need"`
	Fits     []NodeFit       `json:"fits"`     // best first
	Rejected []NodeRejection `json:"rejected"` // in input order
}

// SuggestFit scores every ready, uncordoned, running node in the requested region
// with the labels and free capacity for req.Need. Scores follow
// Kubernetes' NodeResourcesFit (cpu, memory and disk weighted equally, the
// instance counted as placed): binpack is MostAllocated, spread is
// LeastAllocated; ties go to the higher BalancedAllocation, then to the
// node listed first (the store lists nodes by name). It runs in O(n log n)
// over per-node aggregates and sorts integer keys.
func SuggestFit(nodes []NodeCapacity, req FitRequest) (FitResult, error) {
	if req.Strategy == "" {
		req.Strategy = StrategyBinpack
	}
	switch {
	case req.Strategy != StrategyBinpack && req.Strategy != StrategySpread:
		return FitResult{}, invalid("strategy", "must be binpack or spread")
	case req.Need.MilliCPU <= 0:
		return FitResult{}, invalid("cpu", "must be positive")
	case req.Need.MemoryMiB <= 0:
		return FitResult{}, invalid("memory_gb", "must be positive")
	case req.Need.DiskMiB <= 0:
		return FitResult{}, invalid("disk_gb", "must be positive")
	}
	// Pass 1 finds why each node is rejected, so pass 2 can allocate the
	// two result slices at their exact sizes.
	why := make([]RejectReasons, len(nodes))
	fits := 0
	for i := range nodes {
		why[i] = rejectReasons(&nodes[i], &req)
		if why[i] == 0 {
			fits++
		}
	}
	res := FitResult{Strategy: req.Strategy, Need: req.Need,
		Fits: make([]NodeFit, 0, fits), Rejected: make([]NodeRejection, 0, len(nodes)-fits)}
	// Each fit is ranked by one integer key: (100-score, 100-balanced, input
	// index), so sorting compares machine words, not structs and strings.
	keys := make([]uint64, 0, fits)
	for i := range nodes {
		n := &nodes[i]
		if why[i] != 0 {
			res.Rejected = append(res.Rejected, NodeRejection{ID: n.ID, Name: n.Name, Reasons: why[i], Free: n.Free()})
			continue
		}
		used := n.Reserved.Add(req.Need)
		score := allocatedScore(used, n.Capacity, req.Strategy)
		balanced := balancedScore(used, n.Capacity)
		keys = append(keys, uint64(100-score)<<56|uint64(100-balanced)<<48|uint64(i))
	}
	slices.Sort(keys)
	for _, k := range keys {
		n := &nodes[k&(1<<48-1)]
		free := n.Free()
		res.Fits = append(res.Fits, NodeFit{
			ID: n.ID, Name: n.Name, Region: n.Region,
			Score: 100 - int64(k>>56), Balanced: 100 - int64(k>>48&0xff),
			Free: free, FreeAfter: free.Sub(req.Need),
		})
	}
	return res, nil
}

// rejectReasons says why n cannot take req (0: it can).
func rejectReasons(n *NodeCapacity, req *FitRequest) RejectReasons {
	var why RejectReasons
	if !n.Ready {
		why |= RejectNotReady
	}
	if n.Cordoned {
		why |= RejectCordoned
	}
	if n.Stopped {
		why |= RejectStopped
	}
	if req.Region != "" && n.Region != req.Region {
		why |= RejectWrongRegion
	}
	for k, v := range req.Labels {
		if got, ok := n.Labels[k]; !ok || got != v {
			why |= RejectLabelMismatch
			break
		}
	}
	free := n.Free()
	if free.MilliCPU < req.Need.MilliCPU {
		why |= RejectInsufficientCPU
	}
	if free.MemoryMiB < req.Need.MemoryMiB {
		why |= RejectInsufficientMemory
	}
	if free.DiskMiB < req.Need.DiskMiB {
		why |= RejectInsufficientDisk
	}
	return why
}

// allocatedScore is Kubernetes' MostAllocated (binpack) or LeastAllocated
// (spread) score in integer arithmetic: per resource requested×100/capacity
// (or its complement), averaged with equal weights. used never exceeds
// capacity here.
func allocatedScore(used, capacity Resources, s Strategy) int64 {
	f := func(u, c int64) int64 {
		if c <= 0 {
			return 0
		}
		u = min(max(u, 0), c)
		if s == StrategySpread {
			return (c - u) * 100 / c
		}
		return u * 100 / c
	}
	return (f(used.MilliCPU, capacity.MilliCPU) + f(used.MemoryMiB, capacity.MemoryMiB) + f(used.DiskMiB, capacity.DiskMiB)) / 3
}

// balancedScore is Kubernetes' BalancedAllocation: (1 - standard deviation
// of the used fractions) × 100, truncated, within 0–100.
func balancedScore(used, capacity Resources) int64 {
	u := utilisation(used, capacity)
	u.CPU, u.Memory, u.Disk = math.Min(u.CPU, 1), math.Min(u.Memory, 1), math.Min(u.Disk, 1)
	return min(max(int64((1-u.Imbalance())*100), 0), 100)
}
