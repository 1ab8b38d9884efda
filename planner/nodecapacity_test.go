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
	tests := []struct {
		strategy Strategy
		order    []string
		scores   []int64
	}{
		// binpack (MostAllocated): busy (75,87,62)→74; half (75,62,62)→66;
		// lopsided (25,87,12)→41; empty (25,12,12)→16.
		{StrategyBinpack, []string{"busy", "half", "lopsided", "empty"}, []int64{74, 66, 41, 16}},
		{"", []string{"busy", "half", "lopsided", "empty"}, []int64{74, 66, 41, 16}},
		// spread (LeastAllocated): empty (75,87,87)→83; lopsided (75,12,87)→58;
		// half (25,37,37)→33; busy (25,12,37)→24.
		{StrategySpread, []string{"empty", "lopsided", "half", "busy"}, []int64{83, 58, 33, 24}},
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
			}
			if !slices.Equal(order, tt.order) || !slices.Equal(scores, tt.scores) {
				t.Errorf("order %v scores %v, want %v %v", order, scores, tt.order, tt.scores)
			}
			if res.Fits[0].FreeAfter != res.Fits[0].Free.Sub(need) {
				t.Errorf("free after %v", res.Fits[0].FreeAfter)
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
	if res.Fits[0].Score != res.Fits[1].Score || res.Fits[0].ID != "b-even" || res.Fits[0].Balanced <= res.Fits[1].Balanced {
		t.Errorf("fits %+v", res.Fits)
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
	res, err := SuggestFit([]NodeCapacity{full, cordoned, down, far, other, tiny, ok}, FitRequest{
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
			if !f.Free.Covers(req.Need) || f.Score < 0 || f.Score > 100 {
				t.Errorf("fit %+v", f)
			}
			if j > 0 && (res.Fits[j-1].Score < f.Score || (res.Fits[j-1].Score == f.Score && res.Fits[j-1].Balanced < f.Balanced)) {
				t.Errorf("fits %d, %d out of order", j-1, j)
			}
		}
		for _, r := range res.Rejected {
			if r.Reasons == 0 || (r.Reasons.Has(RejectInsufficientMemory) != (r.Free.MemoryMiB < req.Need.MemoryMiB)) {
				t.Errorf("rejection %+v", r)
			}
		}
	}
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
