package planner

import (
	"fmt"
	"math/rand/v2"
	"testing"
)

func fleetNode(t testing.TB, id, region, cost string, capacity Resources, placed ...Resources) FleetNode {
	t.Helper()
	n := FleetNode{
		NodeCapacity: NodeCapacity{ID: id, Name: id, Provider: "hetzner", Region: region, Ready: true, Capacity: capacity},
		MonthlyCost:  mustMoney(t, cost, "EUR"),
	}
	for i, p := range placed {
		n.Placed = append(n.Placed, Placement{ID: fmt.Sprintf("%s-i%d", id, i), Need: p})
		n.Reserved = n.Reserved.Add(p)
	}
	return n
}

func TestFleetReport(t *testing.T) {
	t.Parallel()
	capacity := Resources{4000, 8192, 81920}
	small := Resources{500, 1024, 5120}
	big := Resources{2000, 4096, 20480}

	t.Run("empties the least used node", func(t *testing.T) {
		t.Parallel()
		nodes := []FleetNode{
			fleetNode(t, "a", "fsn1", "10", capacity, big, small),
			fleetNode(t, "b", "fsn1", "10", capacity, big),
			fleetNode(t, "c", "fsn1", "10", capacity, small, small),
			fleetNode(t, "d", "hel1", "10", capacity, small), // alone in its region: stays
		}
		rep, err := BuildFleetReport(nodes, FleetOptions{})
		if err != nil {
			t.Fatal(err)
		}
		if !rep.Worthwhile || len(rep.Emptiable) != 1 || rep.Emptiable[0].ID != "c" {
			t.Fatalf("report %+v", rep)
		}
		if rep.PotentialSaving.String() != "10.00 EUR" || rep.MonthlyCost.String() != "40.00 EUR" || rep.SavingPercent != 25 {
			t.Errorf("saving %s of %s (%v%%)", rep.PotentialSaving, rep.MonthlyCost, rep.SavingPercent)
		}
		// First fit decreasing, fullest first: a (big+small) takes both smalls.
		for _, m := range rep.Emptiable[0].Moves {
			if m.From != "c" || m.To != "a" {
				t.Errorf("move %+v", m)
			}
		}
		if rep.Moves != 2 || len(rep.Nodes) != 4 || rep.Nodes[1].Utilisation.CPU != 0.5 {
			t.Errorf("moves %d nodes %+v", rep.Moves, rep.Nodes)
		}
	})

	t.Run("below the threshold nothing moves", func(t *testing.T) {
		t.Parallel()
		nodes := []FleetNode{
			fleetNode(t, "a", "fsn1", "40", capacity, big, small),
			fleetNode(t, "b", "fsn1", "40", capacity, big),
			fleetNode(t, "c", "fsn1", "10", capacity, small), // saving 10 of 90: 11%
		}
		rep, err := BuildFleetReport(nodes, FleetOptions{})
		if err != nil {
			t.Fatal(err)
		}
		if rep.Worthwhile || len(rep.Emptiable) != 0 || rep.Moves != 0 || rep.PotentialSaving.String() != "10.00 EUR" {
			t.Errorf("report %+v", rep)
		}
		rep, _ = BuildFleetReport(nodes, FleetOptions{ThresholdPercent: ptr(10)})
		if !rep.Worthwhile || len(rep.Emptiable) != 1 {
			t.Errorf("threshold 10: %+v", rep)
		}
	})

	t.Run("cordoned, not ready and stopped nodes are left alone", func(t *testing.T) {
		t.Parallel()
		a := fleetNode(t, "a", "fsn1", "10", capacity)
		a.Cordoned = true
		b := fleetNode(t, "b", "fsn1", "10", capacity, small)
		b.Ready = false
		d := fleetNode(t, "d", "fsn1", "10", capacity)
		d.Stopped = true
		rep, err := BuildFleetReport([]FleetNode{a, b, d, fleetNode(t, "c", "fsn1", "10", capacity, big)}, FleetOptions{})
		if err != nil {
			t.Fatal(err)
		}
		if len(rep.Emptiable) != 0 {
			t.Errorf("emptiable %+v", rep.Emptiable)
		}
	})

	t.Run("costs in several currencies", func(t *testing.T) {
		t.Parallel()
		a := fleetNode(t, "a", "fsn1", "10", capacity, big)
		b := fleetNode(t, "b", "fsn1", "0", capacity, small)
		b.MonthlyCost = mustMoney(t, "11.60", "USD")
		rep, err := BuildFleetReport([]FleetNode{a, b}, FleetOptions{})
		if err != nil {
			t.Fatal(err)
		}
		if rep.MonthlyCost.String() != "20.00 EUR" || rep.PotentialSaving.String() != "10.00 EUR" || rep.Rates.Rates["USD"] != "1.16" {
			t.Errorf("report %+v", rep)
		}
	})

	t.Run("validation", func(t *testing.T) {
		t.Parallel()
		_, err := BuildFleetReport(nil, FleetOptions{ThresholdPercent: ptr(101)})
		assertField(t, err, "threshold_percent")
		_, err = BuildFleetReport(nil, FleetOptions{Currency: "XYZ"})
		assertField(t, err, "currency")
		bad := fleetNode(t, "a", "fsn1", "10", capacity, small)
		bad.Reserved = big
		if _, err := BuildFleetReport([]FleetNode{bad}, FleetOptions{}); err == nil {
			t.Error("reserved not checked against placements")
		}
	})
}

// TestFleetReportProperties applies the proposed moves to random fleets and
// checks no node ends over capacity and the saving adds up.
func TestFleetReportProperties(t *testing.T) {
	t.Parallel()
	rng := rand.New(rand.NewPCG(20, 2026))
	totalEmptied, totalMoves := 0, 0
	for i := range 30 {
		nodes := randomFleet(t, rng, 50+rng.IntN(300), 6)
		rep, err := BuildFleetReport(nodes, FleetOptions{ThresholdPercent: ptr(0)})
		if err != nil {
			t.Fatal(err)
		}
		byID := map[string]*FleetNode{}
		free := map[string]Resources{}
		for j := range nodes {
			byID[nodes[j].ID] = &nodes[j]
			free[nodes[j].ID] = nodes[j].Capacity.Sub(nodes[j].Reserved)
		}
		emptied := map[string]bool{}
		saving := Money{Currency: "EUR"}
		for _, e := range rep.Emptiable {
			emptied[e.ID] = true
			saving, _ = saving.Add(e.MonthlyCost)
			if len(e.Moves) != len(byID[e.ID].Placed) {
				t.Errorf("case %d: %s has %d instances, %d moves", i, e.ID, len(byID[e.ID].Placed), len(e.Moves))
			}
		}
		for _, e := range rep.Emptiable {
			for _, m := range e.Moves {
				from, to := byID[m.From], byID[m.To]
				if emptied[m.To] || to.Region != from.Region || !to.Ready || to.Cordoned {
					t.Errorf("case %d: bad target %s for %s", i, m.To, m.Instance)
				}
				for _, p := range from.Placed {
					if p.ID == m.Instance {
						free[m.To] = free[m.To].Sub(p.Need)
					}
				}
			}
		}
		for id, f := range free {
			if !emptied[id] && !f.Covers(Resources{}) && byID[id].Capacity.Covers(byID[id].Reserved) {
				t.Errorf("case %d: %s over capacity after moves: free %v", i, id, f)
			}
		}
		if saving != rep.PotentialSaving {
			t.Errorf("case %d: saving %s, emptied nodes cost %s", i, rep.PotentialSaving, saving)
		}
		totalEmptied, totalMoves = totalEmptied+len(rep.Emptiable), totalMoves+rep.Moves
	}
	if totalEmptied == 0 || totalMoves == 0 {
		t.Errorf("the random fleets exercised nothing: %d emptied, %d moves", totalEmptied, totalMoves)
	}
}

// randomFleet builds n nodes with about perNode instances each, using
// about half of each node.
func randomFleet(t testing.TB, rng *rand.Rand, n, perNode int) []FleetNode {
	t.Helper()
	nodes := make([]FleetNode, n)
	regions := []string{"fsn1", "nbg1", "hel1"}
	for i := range nodes {
		c := Resources{1000 * (4 + rng.Int64N(13)), 1024 * (8 + rng.Int64N(57)), 1024 * (80 + rng.Int64N(400))}
		nd := FleetNode{
			NodeCapacity: NodeCapacity{ID: fmt.Sprintf("n%05d", i), Name: fmt.Sprintf("node-%05d", i), Provider: "hetzner",
				Region: regions[rng.IntN(len(regions))], Ready: rng.IntN(40) != 0, Cordoned: rng.IntN(40) == 0, Capacity: c},
			MonthlyCost: Money{Nanos: (5 + rng.Int64N(100)) * NanosPerUnit, Currency: "EUR"},
		}
		k := rng.IntN(2 * perNode)
		for j := range k {
			// Each resource averages half of 1/perNode of the node: about
			// perNode instances fill half the node.
			pn := int64(perNode)
			need := Resources{max(1, c.MilliCPU*(1+rng.Int64N(100))/(100*pn)),
				max(1, c.MemoryMiB*(1+rng.Int64N(100))/(100*pn)), max(1, c.DiskMiB*(1+rng.Int64N(100))/(100*pn))}
			if !c.Covers(nd.Reserved.Add(need)) {
				break
			}
			nd.Placed = append(nd.Placed, Placement{ID: fmt.Sprintf("%s-%d", nd.ID, j), Need: need})
			nd.Reserved = nd.Reserved.Add(need)
		}
		nd.Instances = len(nd.Placed)
		nodes[i] = nd
	}
	return nodes
}
