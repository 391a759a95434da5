package vaultauth

import (
	"context"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"go.uber.org/zap"
)

// HealthEvery is how often a running session asks Vault whether it is
// reachable and unsealed (sys/health, which needs no token).
var HealthEvery = 10 * time.Second

// Health is what the last look at Vault found.
type Health struct {
	// Checked is when Vault was last asked (zero: not yet).
	Checked time.Time
	// Reachable: Vault answered; Sealed: it said it is sealed (or not
	// initialized), so it signs nothing.
	Reachable, Sealed bool
	// Error says in words why Vault could not be asked ("" when it
	// answered).
	Error string
}

// Up is whether Vault can serve: reachable, initialized and unsealed.
func (h Health) Up() bool { return h.Reachable && !h.Sealed }

// sessionMetrics are a session's Prometheus series; Register exports them.
type sessionMetrics struct {
	logins, renewals *prometheus.CounterVec
	up, sealed       prometheus.Gauge
	checked          prometheus.Gauge
}

func newSessionMetrics() *sessionMetrics {
	m := &sessionMetrics{
		logins: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "ghconnect_vault_logins_total",
			Help: "Vault logins (AppRole) by outcome (ok, error)."}, []string{"outcome"}),
		renewals: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "ghconnect_vault_token_renewals_total",
			Help: "Renewals of the service's Vault token by outcome (ok, error: renewal stopped before the token's maximum TTL)."}, []string{"outcome"}),
		up: prometheus.NewGauge(prometheus.GaugeOpts{Name: "ghconnect_vault_up",
			Help: "1 when Vault answered its last health check reachable, initialized and unsealed; 0 otherwise."}),
		sealed: prometheus.NewGauge(prometheus.GaugeOpts{Name: "ghconnect_vault_sealed",
			Help: "1 when Vault answered its last health check sealed or not initialized."}),
		checked: prometheus.NewGauge(prometheus.GaugeOpts{Name: "ghconnect_vault_health_checked_seconds",
			Help: "Unix time of the last Vault health check."}),
	}
	for _, o := range []string{"ok", "error"} {
		m.logins.WithLabelValues(o)
		m.renewals.WithLabelValues(o)
	}
	return m
}

// Register exports the session's metrics: logins, renewals and Vault's
// health as the session last saw it.
func (s *Session) Register(reg prometheus.Registerer) error {
	for _, c := range []prometheus.Collector{s.m.logins, s.m.renewals, s.m.up, s.m.sealed, s.m.checked} {
		if err := reg.Register(c); err != nil {
			return err
		}
	}
	return nil
}

// Health is what the last health check found (Run checks every
// HealthEvery; CheckHealth checks now).
func (s *Session) Health() Health {
	s.healthMu.Lock()
	defer s.healthMu.Unlock()
	return s.health
}

// CheckHealth asks Vault now and keeps the answer.
func (s *Session) CheckHealth(ctx context.Context) Health {
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	h := Health{Checked: time.Now()}
	resp, err := s.api.Sys().HealthWithContext(ctx)
	switch {
	case err != nil:
		h.Error = "Vault did not answer its health check: " + Reason(err)
	default:
		h.Reachable = true
		h.Sealed = resp.Sealed || !resp.Initialized
	}
	s.healthMu.Lock()
	was := s.health
	s.health = h
	s.healthMu.Unlock()
	s.m.up.Set(bool01(h.Up()))
	s.m.sealed.Set(bool01(h.Sealed))
	s.m.checked.Set(float64(h.Checked.UnixNano()) / 1e9)
	if was.Checked.IsZero() || was.Up() != h.Up() {
		switch {
		case h.Up():
			s.log.Info("Vault is reachable and unsealed")
		case h.Sealed:
			s.log.Warn("Vault is sealed: it signs nothing until an operator unseals it")
		default:
			s.log.Warn("Vault is unreachable", zap.String("reason", h.Error))
		}
	}
	return h
}

func (s *Session) watchHealth(ctx context.Context, wg *sync.WaitGroup) {
	defer wg.Done()
	for {
		s.CheckHealth(ctx)
		select {
		case <-ctx.Done():
			return
		case <-time.After(HealthEvery):
		}
	}
}

func bool01(b bool) float64 {
	if b {
		return 1
	}
	return 0
}
