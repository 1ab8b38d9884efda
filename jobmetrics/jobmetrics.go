// Package jobmetrics exports the job queue's state as Prometheus metrics,
// read from Postgres at each scrape: the whole cluster's jobs (every
// worker process's), from whichever API process is scraped.
package jobmetrics

import (
	"context"
	"log/slog"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/shardform/shardform/store"
)

// runBuckets are the Terraform run duration histogram's bounds, seconds.
var runBuckets = []float64{0.25, 0.5, 1, 2, 5, 10, 30, 60, 300, 1800}

// Collector reads River's and shardform's tables at each scrape.
type Collector struct {
	db      store.DBTX
	log     *slog.Logger
	timeout time.Duration

	jobs, available, oldest, runs *prometheus.Desc
}

// New builds the collector over db (nil log: discard).
func New(db store.DBTX, log *slog.Logger) *Collector {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &Collector{db: db, log: log, timeout: 5 * time.Second,
		jobs:      prometheus.NewDesc("shardform_jobs", "River jobs by kind and state.", []string{"kind", "state"}, nil),
		available: prometheus.NewDesc("shardform_queue_available_jobs", "Jobs waiting for a worker, by queue.", []string{"queue"}, nil),
		oldest:    prometheus.NewDesc("shardform_queue_oldest_available_seconds", "Age of the oldest job waiting for a worker, by queue.", []string{"queue"}, nil),
		runs:      prometheus.NewDesc("shardform_terraform_run_duration_seconds", "Terraform runs finished in the last hour, by kind and outcome: their duration from start to end.", []string{"kind", "status"}, nil),
	}
}

// Describe implements prometheus.Collector.
func (c *Collector) Describe(ch chan<- *prometheus.Desc) {
	ch <- c.jobs
	ch <- c.available
	ch <- c.oldest
	ch <- c.runs
}

// Collect implements prometheus.Collector: three queries; a failed one
// leaves its metrics out of this scrape (and is logged).
func (c *Collector) Collect(ch chan<- prometheus.Metric) {
	ctx, cancel := context.WithTimeout(context.Background(), c.timeout)
	defer cancel()
	if err := c.collectJobs(ctx, ch); err != nil {
		c.log.Warn("job metrics: jobs by kind and state", slog.Any("error", err))
	}
	if err := c.collectQueues(ctx, ch); err != nil {
		c.log.Warn("job metrics: queues", slog.Any("error", err))
	}
	if err := c.collectRuns(ctx, ch); err != nil {
		c.log.Warn("job metrics: run durations", slog.Any("error", err))
	}
}

func (c *Collector) collectJobs(ctx context.Context, ch chan<- prometheus.Metric) error {
	rows, err := c.db.Query(ctx, "SELECT kind, state::text, count(*) FROM river_job GROUP BY kind, state")
	if err != nil {
		return err
	}
	defer rows.Close()
	for rows.Next() {
		var kind, state string
		var n int64
		if err := rows.Scan(&kind, &state, &n); err != nil {
			return err
		}
		ch <- prometheus.MustNewConstMetric(c.jobs, prometheus.GaugeValue, float64(n), kind, state)
	}
	return rows.Err()
}

func (c *Collector) collectQueues(ctx context.Context, ch chan<- prometheus.Metric) error {
	rows, err := c.db.Query(ctx, `SELECT queue, count(*), coalesce(extract(epoch FROM now() - min(scheduled_at)), 0)::float8
		FROM river_job WHERE state = 'available' GROUP BY queue`)
	if err != nil {
		return err
	}
	defer rows.Close()
	for rows.Next() {
		var queue string
		var n int64
		var age float64
		if err := rows.Scan(&queue, &n, &age); err != nil {
			return err
		}
		ch <- prometheus.MustNewConstMetric(c.available, prometheus.GaugeValue, float64(n), queue)
		ch <- prometheus.MustNewConstMetric(c.oldest, prometheus.GaugeValue, max(age, 0), queue)
	}
	return rows.Err()
}

func (c *Collector) collectRuns(ctx context.Context, ch chan<- prometheus.Metric) error {
	rows, err := c.db.Query(ctx, `SELECT kind, status, extract(epoch FROM finished_at - started_at)::float8
		FROM provision_runs WHERE finished_at > now() - interval '1 hour' AND started_at IS NOT NULL`)
	if err != nil {
		return err
	}
	defer rows.Close()
	type hist struct {
		count   uint64
		sum     float64
		buckets map[float64]uint64
	}
	hs := map[[2]string]*hist{}
	for rows.Next() {
		var kind, status string
		var secs float64
		if err := rows.Scan(&kind, &status, &secs); err != nil {
			return err
		}
		k := [2]string{kind, status}
		h := hs[k]
		if h == nil {
			h = &hist{buckets: map[float64]uint64{}}
			for _, b := range runBuckets {
				h.buckets[b] = 0
			}
			hs[k] = h
		}
		h.count++
		h.sum += secs
		for _, b := range runBuckets {
			if secs <= b {
				h.buckets[b]++
			}
		}
	}
	if err := rows.Err(); err != nil {
		return err
	}
	for k, h := range hs {
		ch <- prometheus.MustNewConstHistogram(c.runs, h.count, h.sum, h.buckets, k[0], k[1])
	}
	return nil
}
