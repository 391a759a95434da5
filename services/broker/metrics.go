package broker

import (
	"strconv"
	"sync/atomic"

	"github.com/prometheus/client_golang/prometheus"
)

type metrics struct {
	cache       *prometheus.CounterVec
	exchanges   *prometheus.CounterVec
	signs       *prometheus.CounterVec
	signSeconds prometheus.Histogram
	remaining   *prometheus.GaugeVec
	limit       *prometheus.GaugeVec
	responses   *prometheus.CounterVec
	hitSeconds  prometheus.Histogram
	auditEvents prometheus.Counter
	auditWaits  prometheus.Counter
	// The fleet: this broker's fetches from connections' owners, by
	// outcome, and the fetches it served as an owner.
	peerFetches *prometheus.CounterVec
	peerServed  prometheus.Counter
	// Offers: sent by this broker as an owner (ok, failed, dropped) and
	// received from owners (kept, older: it held a later token).
	offersOut, offersIn *prometheus.CounterVec

	// Resolved once: label lookups cost more than the cache hit itself.
	hits, misses, exclusives prometheus.Counter

	// Plain counts for tests and benchmarks.
	exchangeCount atomic.Int64
	signCount     atomic.Int64
	fetchCount    atomic.Int64
}

func newMetrics(reg prometheus.Registerer) *metrics {
	m := &metrics{
		cache: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "ghconnect_broker_cache_requests_total", Help: "Token requests by cache result (hit, miss, exclusive).",
		}, []string{"result"}),
		exchanges: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "ghconnect_broker_github_exchanges_total", Help: "Installation token exchanges with GitHub.com by outcome.",
		}, []string{"outcome"}),
		signs: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "ghconnect_broker_vault_signs_total", Help: "App JWT signatures made by Vault transit by outcome.",
		}, []string{"outcome"}),
		signSeconds: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name: "ghconnect_broker_vault_sign_seconds", Help: "Latency of Vault transit signs.",
			Buckets: []float64{.0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5},
		}),
		remaining: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "ghconnect_broker_github_ratelimit_remaining", Help: "GitHub.com rate limit remaining, per installation.",
		}, []string{"installation"}),
		limit: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "ghconnect_broker_github_ratelimit_limit", Help: "GitHub.com rate limit per hour, per installation (X-RateLimit-Limit).",
		}, []string{"installation"}),
		responses: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "ghconnect_broker_github_responses_total", Help: "GitHub.com's answers to token exchanges by status class (2xx, 4xx, 5xx; none: no answer, the network or a timeout).",
		}, []string{"class"}),
		hitSeconds: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name: "ghconnect_broker_cache_hit_seconds", Help: "The broker's own time for token requests served from its cache (policy, cache and audit; not the network).",
			Buckets: []float64{.00005, .0001, .00025, .0005, .001, .0025, .005, .01, .025, .05, .1},
		}),
	}
	for _, c := range []string{"2xx", "4xx", "5xx", "none"} {
		m.responses.WithLabelValues(c)
	}
	m.auditEvents = prometheus.NewCounter(prometheus.CounterOpts{
		Name: "ghconnect_broker_audit_events_total", Help: "Audit events written.",
	})
	m.auditWaits = prometheus.NewCounter(prometheus.CounterOpts{
		Name: "ghconnect_broker_audit_backpressure_total", Help: "Audit events that waited for room in the full audit buffer.",
	})
	m.peerFetches = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "ghconnect_broker_peer_fetches_total", Help: "Tokens asked of the broker that owns their connection, by outcome (ok; refused: the owner's refusal, passed on; unreachable: the owner left out for a while; not_here: the owner did not know the connection yet, so this broker exchanged).",
	}, []string{"outcome"})
	for _, o := range []string{"ok", "refused", "unreachable", "not_here"} {
		m.peerFetches.WithLabelValues(o)
	}
	m.peerServed = prometheus.NewCounter(prometheus.CounterOpts{
		Name: "ghconnect_broker_peer_served_total", Help: "Tokens this broker gave other brokers of its fleet as their connection's owner.",
	})
	m.offersOut = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "ghconnect_broker_peer_offers_sent_total", Help: "Tokens this broker offered the others of its fleet after exchanging them, by outcome (ok, failed, dropped: the peer's queue was full).",
	}, []string{"outcome"})
	m.offersIn = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "ghconnect_broker_peer_offers_received_total", Help: "Tokens other brokers of the fleet offered this one, by outcome (kept; older: it held a later token).",
	}, []string{"outcome"})
	for _, o := range []string{"ok", "failed", "dropped"} {
		m.offersOut.WithLabelValues(o)
	}
	for _, o := range []string{"kept", "older"} {
		m.offersIn.WithLabelValues(o)
	}
	if reg != nil {
		reg.MustRegister(m.cache, m.exchanges, m.signs, m.signSeconds, m.remaining, m.limit, m.responses, m.hitSeconds, m.auditEvents, m.auditWaits, m.peerFetches, m.peerServed, m.offersOut, m.offersIn)
	}
	m.hits, m.misses, m.exclusives = m.cache.WithLabelValues("hit"), m.cache.WithLabelValues("miss"), m.cache.WithLabelValues("exclusive")
	return m
}

func (m *metrics) rateRemaining(installation int64, remaining, limit int) {
	id := strconv.FormatInt(installation, 10)
	m.remaining.WithLabelValues(id).Set(float64(remaining))
	if limit > 0 {
		m.limit.WithLabelValues(id).Set(float64(limit))
	}
}
