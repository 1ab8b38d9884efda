package planner

import (
	"fmt"
	"math/rand/v2"
	"slices"
	"testing"
)

func node(id string, capCPU, capMem, capDisk, resCPU, resMem, resDisk int64) NodeCapacity {
	return NodeCapacity{
		ID: id, Name: id, Provider: "hetzner", Region: "fsn1", Ready: true,
		Labels:   map[string]string{"tier": "game"},
		Capacity: Resources{capCPU, capMem, capDisk}, Reserved: Resources{resCPU, resMem, resDisk},
	}
}

func TestSuggestFitScores(t *testing.T) {
	t.Parallel()
	nodes := []NodeCapacity{
		node("empty", 4000, 8192, 81920, 0, 0, 0),
		node("half", 4000, 8192, 81920, 2000, 4096, 40960),
		node("busy", 4000, 8192, 81920, 2000, 6144, 40960),
		node("lopsided", 4000, 8192, 81920, 0, 6144, 0),
	}
	need := Resources{1000, 1024, 10240}
	// Balanced (BalancedAllocation, the tie-break) is the same for both
	// strategies: (1 − population standard deviation of the used fractions)
	// × 100, truncated, with need placed. busy (.75, .875, .625): mean .75,
	// sd √((0 + .125² + .125²)/3) = .1021 → 89.79 → 89; half (.75, .625,
	// .625) and empty (.25, .125, .125): deviations (.0833, −.0417, −.0417),
	// sd .0589 → 94.1 → 94; lopsided (.25, .875, .125): mean .4167,
	// deviations (−.1667, .4583, −.2917), sd √(.3229/3) = .3281 → 67.19 → 67.
	balanced := map[string]int64{"busy": 89, "half": 94, "empty": 94, "lopsided": 67}
	tests := []struct {
		strategy Strategy
		order    []string
		scores   []int64
		// The first fit's free capacity before and after placing need.
		free, freeAfter Resources
	}{
		// binpack (MostAllocated): busy (75,87,62)→74; half (75,62,62)→66;
		// lopsided (25,87,12)→41; empty (25,12,12)→16.
		// busy is free (4000−2000, 8192−6144, 81920−40960) and keeps
		// (2000−1000, 2048−1024, 40960−10240) after.
		{StrategyBinpack, []string{"busy", "half", "lopsided", "empty"}, []int64{74, 66, 41, 16},
			Resources{2000, 2048, 40960}, Resources{1000, 1024, 30720}},
		{"", []string{"busy", "half", "lopsided", "empty"}, []int64{74, 66, 41, 16},
			Resources{2000, 2048, 40960}, Resources{1000, 1024, 30720}},
		// spread (LeastAllocated): empty (75,87,87)→83; lopsided (75,12,87)→58;
		// half (25,37,37)→33; busy (25,12,37)→24.
		// empty is wholly free and keeps (4000−1000, 8192−1024, 81920−10240).
		{StrategySpread, []string{"empty", "lopsided", "half", "busy"}, []int64{83, 58, 33, 24},
			Resources{4000, 8192, 81920}, Resources{3000, 7168, 71680}},
	}
	for _, tt := range tests {
		t.Run(string(tt.strategy), func(t *testing.T) {
			t.Parallel()
			res, err := SuggestFit(nodes, FitRequest{Need: need, Strategy: tt.strategy})
			if err != nil {
				t.Fatal(err)
			}
			var order []string
			var scores []int64
			for _, f := range res.Fits {
				order, scores = append(order, f.ID), append(scores, f.Score)
				if f.Balanced != balanced[f.ID] {
					t.Errorf("%s: balanced %d, want %d", f.ID, f.Balanced, balanced[f.ID])
				}
			}
			if !slices.Equal(order, tt.order) || !slices.Equal(scores, tt.scores) {
				t.Errorf("order %v scores %v, want %v %v", order, scores, tt.order, tt.scores)
			}
			if f := res.Fits[0]; f.Free != tt.free || f.FreeAfter != tt.freeAfter {
				t.Errorf("%s: free %v, after %v; want %v, %v", f.ID, f.Free, f.FreeAfter, tt.free, tt.freeAfter)
			}
		})
	}
}

func TestSuggestFitBalancedTieBreak(t *testing.T) {
	t.Parallel()
	// Same MostAllocated score (50); "even" uses cpu, memory and disk alike.
	nodes := []NodeCapacity{
		node("a-skewed", 1000, 1000, 1000, 799, 0, 399),
		node("b-even", 1000, 1000, 1000, 399, 399, 399),
	}
	res, err := SuggestFit(nodes, FitRequest{Need: Resources{101, 101, 101}})
	if err != nil {
		t.Fatal(err)
	}
	// MostAllocated: a-skewed uses (900, 101, 500) of 1000 → (90+10+50)/3
	// = 50; b-even (500, 500, 500) → 50. Balanced: a-skewed's fractions
	// (.9, .101, .5) have mean .50033 and sd √((.39967² + .39933² +
	// .00033²)/3) = .32619 → (1 − .32619) × 100 = 67.38 → 67; b-even's sd
	// is 0 → 100.
	type fit struct {
		id              string
		score, balanced int64
	}
	var got []fit
	for _, f := range res.Fits {
		got = append(got, fit{f.ID, f.Score, f.Balanced})
	}
	if want := []fit{{"b-even", 50, 100}, {"a-skewed", 50, 67}}; !slices.Equal(got, want) {
		t.Errorf("fits %+v, want %+v", got, want)
	}
}

func TestSuggestFitRejections(t *testing.T) {
	t.Parallel()
	full := node("full", 4000, 8192, 81920, 0, 8000, 0)
	cordoned := node("cordoned", 4000, 8192, 81920, 0, 0, 0)
	cordoned.Cordoned = true
	down := node("down", 4000, 8192, 81920, 0, 0, 0)
	down.Ready = false
	far := node("far", 4000, 8192, 81920, 0, 0, 0)
	far.Region = "hel1"
	other := node("other", 4000, 8192, 81920, 0, 0, 0)
	other.Labels = map[string]string{"tier": "web"}
	tiny := node("tiny", 1000, 8192, 1024, 0, 0, 0)
	ok := node("ok", 4000, 8192, 81920, 0, 0, 0)
	off := node("off", 4000, 8192, 81920, 0, 0, 0)
	off.Stopped = true
	offFar := node("off-far", 4000, 8192, 1024, 0, 0, 0)
	offFar.Stopped, offFar.Region = true, "hel1"
	res, err := SuggestFit([]NodeCapacity{full, cordoned, down, far, other, tiny, off, offFar, ok}, FitRequest{
		Need: Resources{1000, 1024, 10240}, Region: "fsn1", Labels: map[string]string{"tier": "game"},
	})
	if err != nil {
		t.Fatal(err)
	}
	want := map[string][]string{
		"full":     {"insufficient_memory"},
		"cordoned": {"cordoned"},
		"down":     {"not_ready"},
		"far":      {"wrong_region"},
		"other":    {"label_mismatch"},
		"tiny":     {"insufficient_disk"},
		"off":      {"stopped"},
		"off-far":  {"wrong_region", "insufficient_disk", "stopped"}, // the last bit: every code is listed
	}
	if len(res.Fits) != 1 || res.Fits[0].ID != "ok" || len(res.Rejected) != len(want) {
		t.Fatalf("fits %+v rejected %+v", res.Fits, res.Rejected)
	}
	for _, r := range res.Rejected {
		if !slices.Equal(r.Reasons.Codes(), want[r.ID]) {
			t.Errorf("%s: %v, want %v", r.ID, r.Reasons.Codes(), want[r.ID])
		}
	}
	if b, _ := res.Rejected[0].Reasons.MarshalJSON(); string(b) != `["insufficient_memory"]` {
		t.Errorf("json %s", b)
	}
	if res.Rejected[0].Free != (Resources{4000, 192, 81920}) {
		t.Errorf("free %v", res.Rejected[0].Free)
	}
}

func TestSuggestFitValidation(t *testing.T) {
	t.Parallel()
	for _, tt := range []struct {
		req   FitRequest
		field string
	}{
		{FitRequest{Need: Resources{1, 1, 1}, Strategy: "random"}, "strategy"},
		{FitRequest{Need: Resources{0, 1, 1}}, "cpu"},
		{FitRequest{Need: Resources{1, -1, 1}}, "memory_gb"},
		{FitRequest{Need: Resources{1, 1, 0}}, "disk_gb"},
	} {
		_, err := SuggestFit(nil, tt.req)
		assertField(t, err, tt.field)
	}
}

// TestSuggestFitProperties: every fit has room, every rejection names a
// true reason, and nothing is lost.
func TestSuggestFitProperties(t *testing.T) {
	t.Parallel()
	rng := rand.New(rand.NewPCG(7, 2026))
	nodes := randomNodes(rng, 2000)
	byID := map[string]NodeCapacity{}
	for _, n := range nodes {
		byID[n.ID] = n
	}
	for i := range 20 {
		req := FitRequest{
			Need:     Resources{1 + rng.Int64N(4000), 1 + rng.Int64N(16384), 1 + rng.Int64N(40960)},
			Strategy: []Strategy{StrategyBinpack, StrategySpread}[i%2],
		}
		res, err := SuggestFit(nodes, req)
		if err != nil {
			t.Fatal(err)
		}
		if len(res.Fits)+len(res.Rejected) != len(nodes) {
			t.Fatalf("%d fits + %d rejected != %d", len(res.Fits), len(res.Rejected), len(nodes))
		}
		for j, f := range res.Fits {
			n := byID[f.ID]
			free := Resources{n.Capacity.MilliCPU - n.Reserved.MilliCPU, n.Capacity.MemoryMiB - n.Reserved.MemoryMiB, n.Capacity.DiskMiB - n.Reserved.DiskMiB}
			after := Resources{free.MilliCPU - req.Need.MilliCPU, free.MemoryMiB - req.Need.MemoryMiB, free.DiskMiB - req.Need.DiskMiB}
			if codes := expectedReasons(n, free, req.Need); len(codes) != 0 {
				t.Errorf("%s fits, but %v", f.ID, codes)
			}
			if f.Free != free || f.FreeAfter != after || f.Score < 0 || f.Score > 100 || f.Balanced < 0 || f.Balanced > 100 {
				t.Errorf("fit %+v; free %v, after %v", f, free, after)
			}
			if j > 0 && (res.Fits[j-1].Score < f.Score || (res.Fits[j-1].Score == f.Score && res.Fits[j-1].Balanced < f.Balanced)) {
				t.Errorf("fits %d, %d out of order", j-1, j)
			}
		}
		for _, r := range res.Rejected {
			n := byID[r.ID]
			free := Resources{n.Capacity.MilliCPU - n.Reserved.MilliCPU, n.Capacity.MemoryMiB - n.Reserved.MemoryMiB, n.Capacity.DiskMiB - n.Reserved.DiskMiB}
			if want := expectedReasons(n, free, req.Need); !slices.Equal(r.Reasons.Codes(), want) || r.Free != free {
				t.Errorf("rejection %+v, want reasons %v and free %v", r, want, free)
			}
		}
	}
}

// expectedReasons lists, in the documented order, the codes a node with
// free capacity free must be rejected for (the random nodes ask no region
// or labels).
func expectedReasons(n NodeCapacity, free, need Resources) []string {
	var codes []string
	for _, c := range []struct {
		code string
		why  bool
	}{
		{"not_ready", !n.Ready},
		{"cordoned", n.Cordoned},
		{"insufficient_cpu", free.MilliCPU < need.MilliCPU},
		{"insufficient_memory", free.MemoryMiB < need.MemoryMiB},
		{"insufficient_disk", free.DiskMiB < need.DiskMiB},
	} {
		if c.why {
			codes = append(codes, c.code)
		}
	}
	return codes
}

func randomNodes(rng *rand.Rand, n int) []NodeCapacity {
	nodes := make([]NodeCapacity, n)
	for i := range nodes {
		c := Resources{1000 * (2 + rng.Int64N(31)), 1024 * (4 + rng.Int64N(125)), 1024 * (40 + rng.Int64N(600))}
		nodes[i] = NodeCapacity{
			ID: fmt.Sprintf("n%05d", i), Name: fmt.Sprintf("node-%05d", i), Provider: "hetzner",
			Region: []string{"fsn1", "nbg1", "hel1"}[rng.IntN(3)], Ready: rng.IntN(50) != 0, Cordoned: rng.IntN(50) == 0,
			Capacity: c,
			Reserved: Resources{rng.Int64N(c.MilliCPU + 1), rng.Int64N(c.MemoryMiB + 1), rng.Int64N(c.DiskMiB + 1)},
		}
		nodes[i].Instances = int(rng.Int64N(20))
	}
	return nodes
}
