package planner

import (
	"math/rand/v2"
	"testing"
)

// BenchmarkRecommend ranks the whole embedded catalog for Paper servers.
func BenchmarkRecommend(b *testing.B) {
	c := setupRecommend(b)
	paper, _ := TemplateByName("minecraft-java-paper")
	req, err := paper.Requirement(20, 50)
	if err != nil {
		b.Fatal(err)
	}
	opts := Options{Now: planningDay, IncludeDeprecated: true}
	b.ReportAllocs()
	for b.Loop() {
		if _, err := Recommend(c, req, opts); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkSuggestFit scores 10,000 nodes (aggregated reservations of about
// 100,000 instances).
func BenchmarkSuggestFit(b *testing.B) {
	nodes := randomNodes(rand.New(rand.NewPCG(1, 2)), 10_000)
	for name, req := range map[string]FitRequest{
		"one_region": {Need: Resources{1000, 4096, 20480}, Region: "fsn1", Strategy: StrategyBinpack},
		"any_region": {Need: Resources{100, 256, 1024}, Strategy: StrategySpread}, // most nodes fit: the sort dominates
	} {
		b.Run(name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				if _, err := SuggestFit(nodes, req); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// BenchmarkFleetReport consolidates 10,000 nodes holding about 100,000
// instances.
func BenchmarkFleetReport(b *testing.B) {
	nodes := randomFleet(b, rand.New(rand.NewPCG(3, 4)), 10_000, 11)
	placed := 0
	for _, n := range nodes {
		placed += len(n.Placed)
	}
	b.ReportAllocs()
	for b.Loop() {
		if _, err := BuildFleetReport(nodes, FleetOptions{}); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(placed), "instances")
}
