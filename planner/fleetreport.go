package planner

import (
	"cmp"
	"fmt"
	"math/bits"
	"slices"
)

// DefaultSavingThresholdPercent is the saving below which FleetReport
// proposes no consolidation: moving game servers for pennies is churn.
const DefaultSavingThresholdPercent = 20

// Placement is one instance placed on a node, with its reservation.
type Placement struct {
	ID   string    `json:"id"`
	Name string    `json:"name,omitempty"`
	Need Resources `json:"need"`
}

// FleetNode is a node with its price and its instances, the input of a
// fleet report (a background job: it may read every placement).
type FleetNode struct {
	NodeCapacity
	MonthlyCost Money       `json:"monthly_cost"`
	Placed      []Placement `json:"placed"`
}

// FleetOptions shape a fleet report.
type FleetOptions struct {
	// ThresholdPercent: consolidation is proposed only when it saves more
	// than this share of the fleet's monthly cost. nil: 20.
	ThresholdPercent *int
	Currency         string    // empty: DefaultCurrency
	Rates            RateTable // zero value: DefaultRates()
}

// NodeUsage is one node's utilisation in the report.
type NodeUsage struct {
	ID          string      `json:"id"`
	Name        string      `json:"name"`
	Region      string      `json:"region"`
	Instances   int         `json:"instances"`
	Utilisation Utilisation `json:"utilisation"`
	MonthlyCost Money       `json:"monthly_cost"`
}

// Move sends one instance from a node being emptied to another node.
// Name and ToName repeat the instance's and the target node's names for
// people reading the report.
type Move struct {
	Instance string `json:"instance"`
	Name     string `json:"name,omitempty"`
	From     string `json:"from"`
	To       string `json:"to"`
	ToName   string `json:"to_name,omitempty"`
}

// EmptiableNode is a node whose instances all fit elsewhere.
type EmptiableNode struct {
	ID          string `json:"id"`
	Name        string `json:"name"`
	Region      string `json:"region"`
	MonthlyCost Money  `json:"monthly_cost"`
	Moves       []Move `json:"moves"`
	// DrainURL is where to POST to drain the node (set by the service
	// that serves the report): the drain picks its own targets, with
	// suggest-fit's scoring, when it runs.
	DrainURL string `json:"drain_url,omitempty"`
}

// FleetReport is the consolidation report of an organization's fleet.
type FleetReport struct {
	Currency         string      `json:"currency"`
	Rates            UsedRates   `json:"rates"`
	Nodes            []NodeUsage `json:"nodes"`
	MonthlyCost      Money       `json:"monthly_cost"` // all nodes
	ThresholdPercent int         `json:"threshold_percent"`
	// PotentialSaving is the sum of the emptiable nodes' monthly costs,
	// whether or not it clears the threshold.
	PotentialSaving Money   `json:"potential_saving"`
	SavingPercent   float64 `json:"saving_percent"` // for display
	// Worthwhile: the saving exceeds the threshold, and Emptiable lists the
	// nodes to empty with their moves. Otherwise Emptiable is empty.
	Worthwhile bool            `json:"worthwhile"`
	Emptiable  []EmptiableNode `json:"emptiable"`
	Moves      int             `json:"moves"`
}

// BuildFleetReport measures each node and looks for nodes that could be
// emptied by moving their instances to other ready, uncordoned nodes of the
// same provider and region, by first-fit decreasing: the least used nodes
// are tried first; each one's instances, largest first (memory, then cpu,
// then disk), go to the first node in fullest-first order with room. A node
// is emptied only if all its instances fit; a node that receives instances
// is not emptied later. Each node's Reserved, when set, must equal the sum
// of its Placed.
func BuildFleetReport(nodes []FleetNode, opts FleetOptions) (FleetReport, error) {
	threshold := DefaultSavingThresholdPercent
	if opts.ThresholdPercent != nil {
		threshold = *opts.ThresholdPercent
		if threshold < 0 || threshold > 100 {
			return FleetReport{}, invalid("threshold_percent", "must be between 0 and 100")
		}
	}
	rates := opts.Rates
	if rates.Rates == nil {
		rates = DefaultRates()
	}
	currency := cmp.Or(opts.Currency, DefaultCurrency)
	if !rates.Knows(currency) {
		return FleetReport{}, invalid("currency", "no exchange rate for %q", currency)
	}
	rep := FleetReport{
		Currency: currency, ThresholdPercent: threshold,
		Nodes: make([]NodeUsage, len(nodes)), Emptiable: []EmptiableNode{},
		MonthlyCost: Money{Currency: currency}, PotentialSaving: Money{Currency: currency},
	}
	currencies := []string{currency}
	costs := make([]Money, len(nodes))
	used := make([]Resources, len(nodes))
	for i, n := range nodes {
		var sum Resources
		for _, p := range n.Placed {
			if p.Need.MilliCPU < 0 || p.Need.MemoryMiB < 0 || p.Need.DiskMiB < 0 {
				return FleetReport{}, fmt.Errorf("fleet report: node %s: instance %s: negative reservation", n.ID, p.ID)
			}
			sum = sum.Add(p.Need)
		}
		if n.Reserved != (Resources{}) && n.Reserved != sum {
			return FleetReport{}, fmt.Errorf("fleet report: node %s: reserved %v is not the sum of its placements %v", n.ID, n.Reserved, sum)
		}
		used[i] = sum
		c, err := rates.Convert(n.MonthlyCost, currency)
		if err != nil {
			return FleetReport{}, fmt.Errorf("fleet report: node %s: %w", n.ID, err)
		}
		if !slices.Contains(currencies, n.MonthlyCost.Currency) {
			currencies = append(currencies, n.MonthlyCost.Currency)
		}
		costs[i] = c
		if rep.MonthlyCost, err = rep.MonthlyCost.Add(c); err != nil {
			return FleetReport{}, fmt.Errorf("fleet report: %w", err)
		}
		rep.Nodes[i] = NodeUsage{ID: n.ID, Name: n.Name, Region: n.Region, Instances: len(n.Placed),
			Utilisation: utilisation(sum, n.Capacity), MonthlyCost: c}
	}
	rep.Rates = rates.Used(currencies...)

	groups := map[string][]int{}
	var keys []string
	for i, n := range nodes {
		if !n.Ready || n.Cordoned || n.Stopped {
			continue
		}
		k := n.Provider + "\x00" + n.Region
		if _, ok := groups[k]; !ok {
			keys = append(keys, k)
		}
		groups[k] = append(groups[k], i)
	}
	slices.Sort(keys)
	var emptiable []EmptiableNode
	for _, k := range keys {
		emptiable = append(emptiable, consolidate(nodes, groups[k], used, costs, rep.Nodes)...)
	}
	for _, e := range emptiable {
		var err error
		if rep.PotentialSaving, err = rep.PotentialSaving.Add(e.MonthlyCost); err != nil {
			return FleetReport{}, fmt.Errorf("fleet report: %w", err)
		}
	}
	if rep.MonthlyCost.Nanos > 0 {
		rep.SavingPercent = float64(rep.PotentialSaving.Nanos) * 100 / float64(rep.MonthlyCost.Nanos)
	}
	// saving/total > threshold/100, compared exactly in 128 bits.
	rep.Worthwhile = rep.PotentialSaving.Nanos > 0 &&
		greater128(uint64(rep.PotentialSaving.Nanos), 100, uint64(rep.MonthlyCost.Nanos), uint64(threshold))
	if rep.Worthwhile {
		rep.Emptiable = emptiable
		for _, e := range emptiable {
			rep.Moves += len(e.Moves)
		}
	}
	return rep, nil
}

// consolidate runs first-fit decreasing over one provider/region group of
// node indexes.
func consolidate(nodes []FleetNode, group []int, used []Resources, costs []Money, usage []NodeUsage) []EmptiableNode {
	dominant := func(i int) float64 {
		u := usage[i].Utilisation
		return max(u.CPU, u.Memory, u.Disk)
	}
	// Targets: fullest first, so instances pack onto already busy nodes.
	targets := slices.Clone(group)
	slices.SortFunc(targets, func(a, b int) int {
		return cmp.Or(cmp.Compare(dominant(b), dominant(a)), cmp.Compare(nodes[a].ID, nodes[b].ID))
	})
	pos := make(map[int]int, len(targets)) // node index → leaf
	free := make([]Resources, len(targets))
	for leaf, i := range targets {
		pos[i] = leaf
		free[leaf] = nodes[i].Capacity.Sub(used[i])
	}
	tree := newFreeTree(free)
	// Sources: least used first, the dearer node first among equals.
	sources := slices.Clone(group)
	slices.SortFunc(sources, func(a, b int) int {
		return cmp.Or(cmp.Compare(dominant(a), dominant(b)), cmp.Compare(costs[b].Nanos, costs[a].Nanos), cmp.Compare(nodes[a].ID, nodes[b].ID))
	})
	pinned := make([]bool, len(targets)) // received instances: stays
	excluded := Resources{-1, -1, -1}
	var out []EmptiableNode
	var placed []Placement
	var moves []Move
	var undo []int // leaves that received, in order, parallel to moves
	for _, src := range sources {
		leaf := pos[src]
		if pinned[leaf] {
			continue
		}
		tree.set(leaf, excluded)
		placed = append(placed[:0], nodes[src].Placed...)
		slices.SortFunc(placed, func(a, b Placement) int {
			return cmp.Or(cmp.Compare(b.Need.MemoryMiB, a.Need.MemoryMiB), cmp.Compare(b.Need.MilliCPU, a.Need.MilliCPU),
				cmp.Compare(b.Need.DiskMiB, a.Need.DiskMiB), cmp.Compare(a.ID, b.ID))
		})
		moves, undo = moves[:0], undo[:0]
		ok := true
		for _, p := range placed {
			to := tree.first(p.Need)
			if to < 0 {
				ok = false
				break
			}
			free[to] = free[to].Sub(p.Need)
			tree.set(to, free[to])
			moves = append(moves, Move{Instance: p.ID, Name: p.Name, From: nodes[src].ID, To: nodes[targets[to]].ID, ToName: nodes[targets[to]].Name})
			undo = append(undo, to)
		}
		if !ok {
			for j, to := range undo {
				free[to] = free[to].Add(placed[j].Need)
				tree.set(to, free[to])
			}
			tree.set(leaf, free[leaf])
			continue
		}
		for _, to := range undo {
			pinned[to] = true
		}
		out = append(out, EmptiableNode{ID: nodes[src].ID, Name: nodes[src].Name, Region: nodes[src].Region,
			MonthlyCost: costs[src], Moves: slices.Clone(moves)})
	}
	return out
}

// greater128 reports a×b > c×d for non-negative values.
func greater128(a, b, c, d uint64) bool {
	h1, l1 := bits.Mul64(a, b)
	h2, l2 := bits.Mul64(c, d)
	return h1 > h2 || (h1 == h2 && l1 > l2)
}

// freeTree is a segment tree over nodes' free resources that finds the
// leftmost node with room for a need: each inner entry holds the maximum
// free cpu, memory and disk below it, so whole subtrees without room in
// some resource are skipped. Typical queries take O(log n).
type freeTree struct {
	size           int
	cpu, mem, disk []int64
}

func newFreeTree(free []Resources) *freeTree {
	size := 1
	for size < len(free) {
		size *= 2
	}
	t := &freeTree{size: size, cpu: make([]int64, 2*size), mem: make([]int64, 2*size), disk: make([]int64, 2*size)}
	for i := range t.cpu {
		t.cpu[i], t.mem[i], t.disk[i] = -1, -1, -1
	}
	for i, r := range free {
		t.cpu[size+i], t.mem[size+i], t.disk[size+i] = r.MilliCPU, r.MemoryMiB, r.DiskMiB
	}
	for i := size - 1; i >= 1; i-- {
		t.pull(i)
	}
	return t
}

func (t *freeTree) pull(i int) {
	l, r := 2*i, 2*i+1
	t.cpu[i], t.mem[i], t.disk[i] = max(t.cpu[l], t.cpu[r]), max(t.mem[l], t.mem[r]), max(t.disk[l], t.disk[r])
}

func (t *freeTree) set(leaf int, r Resources) {
	i := t.size + leaf
	t.cpu[i], t.mem[i], t.disk[i] = r.MilliCPU, r.MemoryMiB, r.DiskMiB
	for i /= 2; i >= 1; i /= 2 {
		t.pull(i)
	}
}

// first returns the leftmost leaf with room for need, or -1.
func (t *freeTree) first(need Resources) int { return t.search(1, need) }

func (t *freeTree) search(i int, need Resources) int {
	if t.cpu[i] < need.MilliCPU || t.mem[i] < need.MemoryMiB || t.disk[i] < need.DiskMiB {
		return -1
	}
	if i >= t.size {
		return i - t.size
	}
	if l := t.search(2*i, need); l >= 0 {
		return l
	}
	return t.search(2*i+1, need)
}
