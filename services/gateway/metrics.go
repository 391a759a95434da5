package gateway

import (
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// httpMetrics count the gateway's requests by area (api: the REST API;
// auth: single sign-on; connect: GitHub.com's redirects back; actions:
// runners' action downloads; me: a person's own page; page: the admin
// page and its files; health: /healthz and /readyz) and status code.
type httpMetrics struct {
	requests *prometheus.CounterVec
	seconds  *prometheus.HistogramVec
}

// areas are the values of the area label.
var areas = []string{"api", "auth", "connect", "actions", "me", "page", "health"}

func newHTTPMetrics(reg prometheus.Registerer) *httpMetrics {
	m := &httpMetrics{
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "ghconnect_gateway_http_requests_total",
			Help: "HTTP requests the gateway answered, by area (api, auth, connect, actions, me, page, health) and status code."}, []string{"area", "code"}),
		seconds: prometheus.NewHistogramVec(prometheus.HistogramOpts{Name: "ghconnect_gateway_http_request_duration_seconds",
			Help:    "Time the gateway took to answer, by area.",
			Buckets: []float64{.001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10}}, []string{"area"}),
	}
	for _, a := range areas {
		m.seconds.WithLabelValues(a)
		m.requests.WithLabelValues(a, "200")
	}
	reg.MustRegister(m.requests, m.seconds)
	return m
}

// area is the label of a request path.
func area(path string) string {
	switch {
	case strings.HasPrefix(path, "/v1/actions/"):
		return "actions"
	case strings.HasPrefix(path, "/v1/"):
		return "api"
	case strings.HasPrefix(path, "/auth/"):
		return "auth"
	case strings.HasPrefix(path, "/connect/"):
		return "connect"
	case strings.HasPrefix(path, "/me"):
		return "me"
	case path == "/healthz" || path == "/readyz":
		return "health"
	}
	return "page"
}

func (m *httpMetrics) observe(path string, status int, took time.Duration) {
	a := area(path)
	m.requests.WithLabelValues(a, strconv.Itoa(status)).Inc()
	m.seconds.WithLabelValues(a).Observe(took.Seconds())
}

// newMetricsRegistry is the gateway's /metrics: the Go runtime's and the
// process's figures and the gateway's own.
func newMetricsRegistry() *prometheus.Registry {
	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	return reg
}

// sideHandler serves the side listener (-http-addr), as the other
// services' do: /metrics, and the main handler's /healthz and /readyz.
func sideHandler(reg *prometheus.Registry, main http.Handler) http.Handler {
	mux := http.NewServeMux()
	mux.Handle("GET /metrics", promhttp.HandlerFor(reg, promhttp.HandlerOpts{Registry: reg}))
	mux.Handle("GET /healthz", main)
	mux.Handle("GET /readyz", main)
	return mux
}
