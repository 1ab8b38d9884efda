package jobmetrics

import (
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/shardform/shardform/terraform"
)

// Terraform exports one worker process's Terraform processes, by command
// (plan, apply, init, ...): those running now, and those that have exited
// with the CPU and wall time they cost. Unlike Collector it reads the
// process's own runner, so each worker process is scraped for its own.
type Terraform struct {
	stats                      func() map[string]terraform.CommandStats
	running, exited, cpu, wall *prometheus.Desc
}

// NewTerraform exports stats (a terraform.Runner's Stats).
func NewTerraform(stats func() map[string]terraform.CommandStats) *Terraform {
	l := []string{"command"}
	return &Terraform{stats: stats,
		running: prometheus.NewDesc("shardform_terraform_processes_running", "Terraform processes of this worker process running now, by command.", l, nil),
		exited:  prometheus.NewDesc("shardform_terraform_processes_total", "Terraform processes of this worker process that have exited, by command.", l, nil),
		cpu:     prometheus.NewDesc("shardform_terraform_process_cpu_seconds_total", "User and system CPU time of exited Terraform processes (with the providers they ran), by command.", l, nil),
		wall:    prometheus.NewDesc("shardform_terraform_process_seconds_total", "Wall time from start to exit of exited Terraform processes, by command.", l, nil),
	}
}

// Describe implements prometheus.Collector.
func (t *Terraform) Describe(ch chan<- *prometheus.Desc) {
	ch <- t.running
	ch <- t.exited
	ch <- t.cpu
	ch <- t.wall
}

// Collect implements prometheus.Collector.
func (t *Terraform) Collect(ch chan<- prometheus.Metric) {
	for cmd, s := range t.stats() {
		ch <- prometheus.MustNewConstMetric(t.running, prometheus.GaugeValue, float64(s.Running), cmd)
		ch <- prometheus.MustNewConstMetric(t.exited, prometheus.CounterValue, float64(s.Processes), cmd)
		ch <- prometheus.MustNewConstMetric(t.cpu, prometheus.CounterValue, s.CPU().Seconds(), cmd)
		ch <- prometheus.MustNewConstMetric(t.wall, prometheus.CounterValue, s.Wall.Seconds(), cmd)
	}
}

// signBuckets are the signing latency histogram's bounds, seconds: a
// certificate is a job's round trip, milliseconds when the queue is idle.
var signBuckets = []float64{0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10}

// SignLatency is the histogram of certificate signing as the API's callers
// see it: from the request (after validation) to the recorded certificate
// or the failure, by kind (user, host) and outcome (ok, error).
type SignLatency struct {
	h *prometheus.HistogramVec
}

// NewSignLatency makes the histogram; register it with Collector.
func NewSignLatency() *SignLatency {
	return &SignLatency{h: prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Name:    "shardform_ssh_sign_duration_seconds",
		Help:    "SSH certificate signing from the request to the answer (a queued ssh job's round trip), by kind and outcome.",
		Buckets: signBuckets,
	}, []string{"kind", "outcome"})}
}

// Collector is what to register.
func (s *SignLatency) Collector() prometheus.Collector { return s.h }

// Observe records one signing (sshsign.Options.Observe).
func (s *SignLatency) Observe(kind string, took time.Duration, err error) {
	outcome := "ok"
	if err != nil {
		outcome = "error"
	}
	s.h.WithLabelValues(kind, outcome).Observe(took.Seconds())
}
