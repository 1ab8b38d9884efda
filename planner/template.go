package planner

import (
	"cmp"
	"slices"
)

// CPUPreference says what kind of CPU a game server benefits from.
type CPUPreference string

// CPU preferences.
const (
	// PreferSingleThread: one hot main thread; a faster core helps, more cores do not.
	PreferSingleThread CPUPreference = "single_thread"
	// PreferCores: the server spreads work over several cores.
	PreferCores CPUPreference = "cores"
)

// Port is a port or port range a game server listens on.
type Port struct {
	From     int    `json:"from"`
	To       int    `json:"to"`       // equal to From for a single port
	Protocol string `json:"protocol"` // "tcp" or "udp"
	Purpose  string `json:"purpose"`
}

// Template is a game server's published resource needs: defaults a planner
// can override. Memory grows linearly with players from BaseMemoryMiB, never
// below MinMemoryMiB.
type Template struct {
	Name               string        `json:"name"` // "minecraft-java-paper"
	Title              string        `json:"title"`
	MilliCPU           int64         `json:"milli_cpu"`
	BaseMemoryMiB      int64         `json:"base_memory_mib"`
	PerPlayerMemoryMiB int64         `json:"per_player_memory_mib"`
	MinMemoryMiB       int64         `json:"min_memory_mib,omitempty"`
	DiskMiB            int64         `json:"disk_mib"`
	MaxPlayers         int           `json:"max_players"`     // the most the template plans for
	DefaultPlayers     int           `json:"default_players"` // when the request names none
	Ports              []Port        `json:"ports"`
	CPUPreference      CPUPreference `json:"cpu_preference"`
	Arch               []Arch        `json:"arch"` // architectures the server runs on
	Sources            []string      `json:"sources"`
	Notes              string        `json:"notes,omitempty"`
}

const gameServersDoc = "shared/data/game-servers.md"

// Templates returns the built-in workload templates, sorted by name. The
// figures are those of shared/data/game-servers.md, turned into one base
// plus a per-player slope that stays within the published ranges; each
// template's Notes say how.
func Templates() []Template {
	x86 := []Arch{ArchX86}
	both := []Arch{ArchX86, ArchARM}
	mcPort := []Port{{25565, 25565, "tcp", "game"}}
	ts := []Template{
		{
			Name: "minecraft-java-vanilla", Title: "Minecraft Java Edition (vanilla)",
			MilliCPU: 1000, BaseMemoryMiB: 1536, PerPlayerMemoryMiB: 200, DiskMiB: 20 * 1024,
			MaxPlayers: 100, DefaultPlayers: 10, Ports: mcPort, CPUPreference: PreferSingleThread, Arch: both,
			Sources: []string{gameServersDoc + " (hosting guides: 1–2 GB base + 0.1–0.3 GB per player, 20–40 GB SSD)"},
			Notes:   "1.5 GiB base, 200 MiB per player; the JVM runs on x86 and arm",
		},
		{
			Name: "minecraft-java-paper", Title: "Minecraft Java Edition (Paper)",
			MilliCPU: 1000, BaseMemoryMiB: 2560, PerPlayerMemoryMiB: 200, DiskMiB: 20 * 1024,
			MaxPlayers: 150, DefaultPlayers: 20, Ports: mcPort, CPUPreference: PreferSingleThread, Arch: both,
			Sources: []string{gameServersDoc + " (hosting guides: 2–3 GB base + 0.15–0.3 GB per player, 20–40 GB SSD)"},
			Notes:   "2.5 GiB base, 200 MiB per player",
		},
		{
			Name: "minecraft-java-modded", Title: "Minecraft Java Edition (modded)",
			MilliCPU: 2000, BaseMemoryMiB: 6144, PerPlayerMemoryMiB: 350, DiskMiB: 30 * 1024,
			MaxPlayers: 50, DefaultPlayers: 10, Ports: mcPort, CPUPreference: PreferSingleThread, Arch: both,
			Sources: []string{gameServersDoc + " (hosting guides: 4–12 GB base + 0.2–0.5 GB per player)"},
			Notes:   "6 GiB base, 350 MiB per player; heavy mod packs need more",
		},
		{
			Name: "minecraft-bedrock", Title: "Minecraft Bedrock Edition",
			MilliCPU: 1500, BaseMemoryMiB: 1024, PerPlayerMemoryMiB: 32, DiskMiB: 10 * 1024,
			MaxPlayers: 30, DefaultPlayers: 10, Ports: []Port{{19132, 19132, "udp", "game (IPv4)"}}, CPUPreference: PreferCores, Arch: x86,
			Sources: []string{gameServersDoc + " (Bedrock dedicated server docs: 1–2 cores, 1–2 GB, 10 GB; port marked unchecked)"},
			Notes:   "1 GiB base + 32 MiB per player reaches 2 GiB at 30 players; the official server is x86-64 only",
		},
		{
			Name: "valheim", Title: "Valheim",
			MilliCPU: 2000, BaseMemoryMiB: 3584, PerPlayerMemoryMiB: 256, MinMemoryMiB: 4096, DiskMiB: 2 * 1024,
			MaxPlayers: 10, DefaultPlayers: 10, Ports: []Port{{2456, 2458, "udp", "game and query"}}, CPUPreference: PreferCores, Arch: x86,
			Sources: []string{gameServersDoc + " (Valheim wiki, hosting guides: min 2 cores, 4 GB; 6 GB recommended; 100–300 MB per active area)"},
			Notes:   "at least 4 GiB; 3.5 GiB + 256 MiB per player gives the recommended 6 GiB at the game's 10-player limit",
		},
		{
			Name: "rust", Title: "Rust",
			MilliCPU: 4000, BaseMemoryMiB: 6144, PerPlayerMemoryMiB: 50, DiskMiB: 30 * 1024,
			MaxPlayers: 300, DefaultPlayers: 50, CPUPreference: PreferCores, Arch: x86,
			Ports:   []Port{{28015, 28015, "udp", "game"}, {28016, 28016, "tcp", "RCON"}},
			Sources: []string{gameServersDoc + " (SteamCMD app 258550, hosting guides: 4+ cores; ~8 GB at 50 players, ~12 GB at 100, 16 GB+ at 200)"},
			Notes:   "6 GiB + 50 MiB per player: 8.4 GiB at 50, 10.9 at 100, 15.8 at 200; larger maps need more",
		},
		{
			Name: "cs2", Title: "Counter-Strike 2",
			MilliCPU: 2000, BaseMemoryMiB: 2048, DiskMiB: 40 * 1024,
			MaxPlayers: 64, DefaultPlayers: 10, CPUPreference: PreferSingleThread, Arch: x86,
			Ports:   []Port{{27015, 27015, "tcp", "game and RCON"}, {27015, 27015, "udp", "game"}, {27020, 27020, "udp", "SourceTV"}},
			Sources: []string{gameServersDoc + " (community server image: 2 cores, 2 GiB, 40 GB; needs a GSLT token)"},
			Notes:   "memory does not grow with players in the published figures; the tick loop favours a fast core",
		},
		{
			Name: "ark", Title: "ARK: Survival Evolved",
			MilliCPU: 2000, BaseMemoryMiB: 4096, PerPlayerMemoryMiB: 100, DiskMiB: 18 * 1024,
			MaxPlayers: 70, DefaultPlayers: 10, CPUPreference: PreferSingleThread, Arch: x86,
			Ports:   []Port{{7777, 7778, "udp", "game"}, {27015, 27015, "udp", "query (unchecked)"}},
			Sources: []string{gameServersDoc + " (ARK wiki, LinuxGSM: 3.5–4.5 GiB empty + 50–150 MiB per player; 7 GB TheIsland, 12 GB Genesis 2; ~18 GiB disk)"},
			Notes:   "4 GiB + 100 MiB per player; large maps (Genesis 2) need 12 GiB: override the memory",
		},
		{
			Name: "palworld", Title: "Palworld",
			MilliCPU: 4000, BaseMemoryMiB: 8192, PerPlayerMemoryMiB: 2048, MinMemoryMiB: 16384, DiskMiB: 20 * 1024,
			MaxPlayers: 32, DefaultPlayers: 8, CPUPreference: PreferCores, Arch: x86,
			Ports:   []Port{{8211, 8211, "udp", "game"}, {27015, 27015, "udp", "query"}, {25575, 25575, "tcp", "RCON"}, {8212, 8212, "tcp", "REST API"}},
			Sources: []string{gameServersDoc + " (community server image: 4 cores, min 16 GB, 32 GB recommended, community rule 8 GB + 2 GB per player, max 32 players)"},
			Notes:   "the community rule 8 GiB + 2 GiB per player, never below 16 GiB",
		},
		{
			Name: "factorio", Title: "Factorio",
			MilliCPU: 1000, BaseMemoryMiB: 1536, PerPlayerMemoryMiB: 192, DiskMiB: 5 * 1024,
			MaxPlayers: 64, DefaultPlayers: 4, CPUPreference: PreferSingleThread, Arch: x86,
			Ports:   []Port{{34197, 34197, "udp", "game"}},
			Sources: []string{gameServersDoc + " (hosting guides: single thread at 3.5 GHz+; 2 GB for 1–4 players, 4 GB for 5–12, 8 GB for a megabase)"},
			Notes:   "1.5 GiB + 192 MiB per player: 2.3 GiB at 4, 3.8 GiB at 12; a megabase needs 8 GiB whatever the players",
		},
		{
			Name: "terraria", Title: "Terraria (vanilla)",
			MilliCPU: 1000, BaseMemoryMiB: 768, PerPlayerMemoryMiB: 32, DiskMiB: 2 * 1024,
			MaxPlayers: 64, DefaultPlayers: 8, CPUPreference: PreferSingleThread, Arch: x86,
			Ports:   []Port{{7777, 7777, "tcp", "game"}},
			Sources: []string{gameServersDoc + " (hosting guides: single thread; vanilla 0.5–2 GB, tModLoader 4–6 GB+; 2 GB disk)"},
			Notes:   "768 MiB + 32 MiB per player stays within 0.5–2 GB up to 40 players; tModLoader needs 4–6 GiB: override the memory",
		},
	}
	slices.SortFunc(ts, func(a, b Template) int { return cmp.Compare(a.Name, b.Name) })
	return ts
}

// TemplateByName finds a built-in template; an unknown name is a validation
// error on the field "template".
func TemplateByName(name string) (Template, error) {
	for _, t := range Templates() {
		if t.Name == name {
			return t, nil
		}
	}
	return Template{}, invalid("template", "unknown template %q", name)
}

// Requirement derives the per-instance requirement for a server with
// players players (0 means the template's default) and count instances (0
// means one).
func (t Template) Requirement(players, count int) (Requirement, error) {
	if players == 0 {
		players = t.DefaultPlayers
	}
	if count == 0 {
		count = 1
	}
	switch {
	case players < 0:
		return Requirement{}, invalid("players", "must be positive")
	case players > t.MaxPlayers:
		return Requirement{}, invalid("players", "must be at most %d for %s", t.MaxPlayers, t.Name)
	}
	mem := max(t.BaseMemoryMiB+t.PerPlayerMemoryMiB*int64(players), t.MinMemoryMiB)
	r := Requirement{
		Per:      Resources{MilliCPU: t.MilliCPU, MemoryMiB: mem, DiskMiB: t.DiskMiB},
		Count:    count,
		Arch:     slices.Clone(t.Arch),
		Template: t.Name,
		Players:  players,
	}
	if err := r.Validate(); err != nil {
		return Requirement{}, err // already names the request field
	}
	return r, nil
}
