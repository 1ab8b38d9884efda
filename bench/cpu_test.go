package bench

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// cpuSample is CPU time used so far, by whom. CPU time, unlike wall time,
// hardly depends on what else the shared machine runs at the time.
type cpuSample struct {
	// self is this process: the API, the workers, the state server and the
	// benchmark's own client, all in-process.
	self time.Duration
	// children is the processes this one has waited for: every Terraform
	// process (and its providers, which Terraform waits for).
	children time.Duration
	// postgres is every Postgres process, with the backends that have
	// exited (counted in the postmaster's children times): the benchmark's
	// and, on a shared machine, anyone else's.
	postgres time.Duration
	// machine is the busy time of every CPU of the machine.
	machine time.Duration
}

// clockTick is USER_HZ, the unit of /proc's CPU times (100 on Linux).
const clockTick = 10 * time.Millisecond

func sampleCPU(b *testing.B) cpuSample {
	b.Helper()
	var s cpuSample
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		b.Fatal(err)
	}
	s.self = time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
	if err := syscall.Getrusage(syscall.RUSAGE_CHILDREN, &ru); err != nil {
		b.Fatal(err)
	}
	s.children = time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
	s.postgres = postgresCPU()
	if raw, err := os.ReadFile("/proc/stat"); err == nil {
		line, _, _ := strings.Cut(string(raw), "\n")
		f := strings.Fields(line) // cpu user nice system idle iowait irq softirq steal ...
		for _, i := range []int{1, 2, 3, 6, 7} {
			if i < len(f) {
				n, _ := strconv.ParseInt(f[i], 10, 64)
				s.machine += time.Duration(n) * clockTick
			}
		}
	}
	return s
}

// postgresCPU sums user and system time of the processes named postgres,
// with their children's (the postmaster's: every backend that exited).
func postgresCPU() time.Duration {
	dirs, _ := filepath.Glob("/proc/[0-9]*")
	var total time.Duration
	for _, d := range dirs {
		comm, err := os.ReadFile(filepath.Join(d, "comm"))
		if err != nil || string(bytes.TrimSpace(comm)) != "postgres" {
			continue
		}
		total += procCPU(filepath.Join(d, "stat"), true)
	}
	return total
}

// procCPU reads utime+stime (and cutime+cstime with children) of a
// /proc/<pid>/stat file.
func procCPU(path string, children bool) time.Duration {
	raw, err := os.ReadFile(path)
	if err != nil {
		return 0
	}
	i := bytes.LastIndexByte(raw, ')') // the command name may hold spaces
	if i < 0 {
		return 0
	}
	f := strings.Fields(string(raw[i+1:])) // from field 3 (state) on
	fields := []int{11, 12}                // utime, stime
	if children {
		fields = append(fields, 13, 14) // cutime, cstime
	}
	var ticks int64
	for _, k := range fields {
		if k < len(f) {
			n, _ := strconv.ParseInt(f[k], 10, 64)
			ticks += n
		}
	}
	return time.Duration(ticks) * clockTick
}

func (s cpuSample) add(o cpuSample) cpuSample {
	return cpuSample{self: s.self + o.self, children: s.children + o.children, postgres: s.postgres + o.postgres, machine: s.machine + o.machine}
}

func (s cpuSample) sub(o cpuSample) cpuSample {
	return cpuSample{self: s.self - o.self, children: s.children - o.children, postgres: s.postgres - o.postgres, machine: s.machine - o.machine}
}

// report adds the sample's figures per request (ms of CPU) to b's metrics,
// each named prefix + what.
func (s cpuSample) report(b *testing.B, prefix string, requests int) {
	per := func(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 / float64(requests) }
	b.ReportMetric(per(s.self), prefix+"process-cpu-ms/request")
	b.ReportMetric(per(s.children), prefix+"terraform-cpu-ms/request")
	b.ReportMetric(per(s.postgres), prefix+"postgres-cpu-ms/request")
	b.ReportMetric(per(s.self+s.children+s.postgres), prefix+"cpu-ms/request")
	b.ReportMetric(per(s.machine-s.self-s.children-s.postgres), prefix+"other-cpu-ms/request")
}

func (s cpuSample) String() string {
	return fmt.Sprintf("process %v, terraform %v, postgres %v, rest of the machine %v", s.self.Round(time.Millisecond), s.children.Round(time.Millisecond),
		s.postgres.Round(time.Millisecond), (s.machine - s.self - s.children - s.postgres).Round(time.Millisecond))
}

// terraformWrapper writes a script that runs bin as Terraform (exec: the
// same process) after appending the command's name to the file commands.
func terraformWrapper(b *testing.B, bin, commands string) string {
	b.Helper()
	wrapper := filepath.Join(b.TempDir(), "terraform")
	script := fmt.Sprintf("#!/bin/sh\necho \"$1\" >> %s\nexec %s \"$@\"\n", commands, bin)
	if err := os.WriteFile(wrapper, []byte(script), 0o755); err != nil {
		b.Fatal(err)
	}
	return wrapper
}
