package planner

import (
	"testing"
)

func TestTemplates(t *testing.T) {
	t.Parallel()
	want := []string{"ark", "cs2", "factorio", "minecraft-bedrock", "minecraft-java-modded", "minecraft-java-paper",
		"minecraft-java-vanilla", "palworld", "rust", "terraria", "valheim"}
	ts := Templates()
	if len(ts) != len(want) {
		t.Fatalf("%d templates", len(ts))
	}
	for i, tpl := range ts {
		if tpl.Name != want[i] {
			t.Errorf("template %d is %s, want %s", i, tpl.Name, want[i])
		}
		if tpl.MilliCPU <= 0 || tpl.BaseMemoryMiB <= 0 || tpl.DiskMiB <= 0 || tpl.MaxPlayers <= 0 ||
			tpl.DefaultPlayers <= 0 || tpl.DefaultPlayers > tpl.MaxPlayers || len(tpl.Ports) == 0 ||
			len(tpl.Arch) == 0 || len(tpl.Sources) == 0 || tpl.CPUPreference == "" {
			t.Errorf("template %s incomplete: %+v", tpl.Name, tpl)
		}
		if _, err := tpl.Requirement(tpl.MaxPlayers, MaxCount); err != nil {
			t.Errorf("template %s at max players: %v", tpl.Name, err)
		}
	}
	// Templates returns a fresh slice: changing it changes nothing else.
	ts[0].MilliCPU = -1
	if Templates()[0].MilliCPU == -1 {
		t.Error("templates share state")
	}
}

func TestTemplateRequirement(t *testing.T) {
	t.Parallel()
	tests := []struct {
		template string
		players  int
		want     Resources
	}{
		{"minecraft-java-paper", 20, Resources{1000, 2560 + 20*200, 20 * 1024}},
		{"minecraft-java-vanilla", 0, Resources{1000, 1536 + 10*200, 20 * 1024}}, // default players
		{"palworld", 2, Resources{4000, 16384, 20 * 1024}},                       // the 16 GiB floor
		{"palworld", 8, Resources{4000, 8192 + 8*2048, 20 * 1024}},
		{"valheim", 10, Resources{2000, 6144, 2048}},
		{"rust", 100, Resources{4000, 6144 + 100*50, 30 * 1024}},
	}
	for _, tt := range tests {
		t.Run(tt.template, func(t *testing.T) {
			t.Parallel()
			tpl, err := TemplateByName(tt.template)
			if err != nil {
				t.Fatal(err)
			}
			r, err := tpl.Requirement(tt.players, 0)
			if err != nil {
				t.Fatal(err)
			}
			if r.Per != tt.want || r.Count != 1 || r.Template != tt.template {
				t.Errorf("requirement %+v, want %+v", r, tt.want)
			}
		})
	}
}

func TestTemplateValidation(t *testing.T) {
	t.Parallel()
	_, err := TemplateByName("doom")
	assertField(t, err, "template")
	valheim, _ := TemplateByName("valheim")
	_, err = valheim.Requirement(11, 1)
	assertField(t, err, "players")
	_, err = valheim.Requirement(-1, 1)
	assertField(t, err, "players")
	_, err = valheim.Requirement(5, MaxCount+1)
	assertField(t, err, "count")
}
