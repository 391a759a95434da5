package monitoring

import (
	"encoding/json"
	"fmt"
	"slices"

	"github.com/grafana/grafana-foundation-sdk/go/cog"
	"github.com/grafana/grafana-foundation-sdk/go/common"
	"github.com/grafana/grafana-foundation-sdk/go/dashboard"
	"github.com/grafana/grafana-foundation-sdk/go/prometheus"
	"github.com/grafana/grafana-foundation-sdk/go/stat"
	"github.com/grafana/grafana-foundation-sdk/go/timeseries"
)

// The Grafana dashboards, built here and committed as dashboards/*.json
// (TestDashboardsAreCurrent fails when they differ): an overview with the
// objectives and their error budgets, and one per service. Every query
// reads the datasource chosen in the dashboard's ${datasource} variable.

// The methods the objectives are about.
const (
	issueToken = `/ghconnect.broker.v1.TokenBrokerService/IssueToken`
	check      = `/ghconnect.featuregate.v1.FeatureGateService/Check`
)

// Server-side failures and decided calls, as the rules count them.
const (
	failedCodes  = `Unknown|Internal|Unavailable|DeadlineExceeded|DataLoss|ResourceExhausted|Aborted|Unimplemented`
	decidedCodes = `OK|` + failedCodes
)

var datasource = common.DataSourceRef{Type: cog.ToPtr("prometheus"), Uid: cog.ToPtr("${datasource}")}

// query is one Prometheus target.
func query(expr, legend string) *prometheus.DataqueryBuilder {
	return prometheus.NewDataqueryBuilder().Expr(expr).LegendFormat(legend).Datasource(datasource)
}

// series is a time series panel of the queries (expr, legend pairs).
func series(title, unit, desc string, pairs ...string) *timeseries.PanelBuilder {
	p := timeseries.NewPanelBuilder().Title(title).Unit(unit).Description(desc).Datasource(datasource).Height(8).Span(12)
	for i := 0; i+1 < len(pairs); i += 2 {
		p.WithTarget(query(pairs[i], pairs[i+1]))
	}
	return p
}

// single is a stat panel: one figure, green from good up (or down, when
// lowerIsBetter), with its threshold as the colour and the words in the
// description.
func single(title, unit, desc, expr string, good float64, lowerIsBetter bool) *stat.PanelBuilder {
	bad, ok := "red", "green"
	first, second := bad, ok
	if lowerIsBetter {
		first, second = ok, bad
	}
	return stat.NewPanelBuilder().Title(title).Unit(unit).Description(desc).Datasource(datasource).Height(6).Span(6).
		WithTarget(query(expr, title)).
		ColorMode(common.BigValueColorModeBackground).GraphMode(common.BigValueGraphModeNone).
		ReduceOptions(common.NewReduceDataOptionsBuilder().Calcs([]string{"lastNotNull"})).
		Thresholds(dashboard.NewThresholdsConfigBuilder().Mode(dashboard.ThresholdsModeAbsolute).Steps([]dashboard.Threshold{
			{Value: nil, Color: first},
			{Value: cog.ToPtr(good), Color: second},
		}))
}

// newDashboard is a dashboard with the datasource variable.
func newDashboard(uid, title, desc string) *dashboard.DashboardBuilder {
	return dashboard.NewDashboardBuilder(title).Uid(uid).Description(desc).Tags([]string{"ghconnect"}).
		Refresh("1m").Time("now-6h", "now").Timezone(common.TimeZoneBrowser).
		WithVariable(dashboard.NewDatasourceVariableBuilder("datasource").Label("Prometheus").Type("prometheus"))
}

// errorRatio is the 30-day share of method's decided calls that failed,
// as the objective counts them.
func errorRatio(method string) string {
	return fmt.Sprintf(`sum(increase(ghconnect_grpc_requests_total{method=%q,code=~%q}[30d])) / sum(increase(ghconnect_grpc_requests_total{method=%q,code=~%q}[30d]))`,
		method, failedCodes, method, decidedCodes)
}

// availability is the 30-day success ratio of method.
func availability(method string) string { return "1 - " + errorRatio(method) }

// budgetLeft is the share of the 30-day error budget (objective
// 1-budget) not yet spent.
func budgetLeft(method string, budget float64) string {
	return fmt.Sprintf("1 - (%s) / %g", errorRatio(method), budget)
}

func overview() *dashboard.DashboardBuilder {
	return newDashboard("ghconnect-overview", "ghconnect: overview",
		"The objectives and their error budgets over 30 days, and the system's vital signs (README: Operating ghconnect).").
		WithRow(dashboard.NewRowBuilder("Objectives (30 days)")).
		WithPanel(single("IssueToken availability", "percentunit", "Share of IssueToken calls that succeeded, refusals by policy excluded. Objective: 99.9%.", availability(issueToken), 0.999, false)).
		WithPanel(single("IssueToken error budget left", "percentunit", "Share of the 30-day error budget (0.1% of calls) not yet spent.", budgetLeft(issueToken, 0.001), 0, false)).
		WithPanel(single("Check availability", "percentunit", "Share of feature Check calls that succeeded, refusals excluded. Objective: 99.9%.", availability(check), 0.999, false)).
		WithPanel(single("Check error budget left", "percentunit", "Share of the 30-day error budget (0.1% of calls) not yet spent.", budgetLeft(check, 0.001), 0, false)).
		WithPanel(single("Cache hits within 10 ms", "percentunit", "Share of cache hits the broker served within 10 ms. Objective: 99%.",
			`sum(increase(ghconnect_broker_cache_hit_seconds_bucket{le="0.01"}[30d])) / sum(increase(ghconnect_broker_cache_hit_seconds_count[30d]))`, 0.99, false)).
		WithPanel(single("Disconnects within 5 minutes", "percentunit", "Share of finished disconnects that took 5 minutes or less. Objective: 99%.",
			`sum(increase(ghconnect_registry_disconnect_seconds_bucket{le="300"}[30d])) / sum(increase(ghconnect_registry_disconnect_seconds_count[30d]))`, 0.99, false)).
		WithPanel(single("Key follower's last pass", "s", "Seconds since the key follower last finished a pass; a key version GitHub.com accepts signs by the next one. Objective: under 2 minutes.",
			`time() - max(ghconnect_registry_loop_last_success_seconds{loop="key_follower"})`, 120, true)).
		WithPanel(single("Vault", "none", "Replicas that find Vault reachable and unsealed, of those that use it.",
			`sum(ghconnect_vault_up)`, 1, false)).
		WithRow(dashboard.NewRowBuilder("Traffic")).
		WithPanel(series("Tokens issued", "reqps", "IssueToken calls a second by result code.",
			fmt.Sprintf(`sum by (code) (rate(ghconnect_grpc_requests_total{method=%q}[$__rate_interval]))`, issueToken), "{{code}}")).
		WithPanel(series("Cache-hit ratio", "percentunit", "Shared-token requests served from the brokers' caches.",
			`sum(rate(ghconnect_broker_cache_requests_total{result="hit"}[$__rate_interval])) / sum(rate(ghconnect_broker_cache_requests_total{result=~"hit|miss"}[$__rate_interval]))`, "hits")).
		WithPanel(series("Vault sign and IssueToken latency", "s", "p99 of Vault transit signs, and of IssueToken calls (hits and misses, exchanges at GitHub.com included).",
			`histogram_quantile(0.99, sum by (le) (rate(ghconnect_broker_vault_sign_seconds_bucket[$__rate_interval])))`, "Vault sign p99",
			fmt.Sprintf(`histogram_quantile(0.99, sum by (le) (rate(ghconnect_grpc_request_duration_seconds_bucket{method=%q}[$__rate_interval])))`, issueToken), "IssueToken p99")).
		WithPanel(series("Vault and GitHub.com errors", "reqps", "Failed Vault signs, and GitHub.com's 5xx or unanswered exchanges, a second.",
			`sum(rate(ghconnect_broker_vault_signs_total{outcome="error"}[$__rate_interval]))`, "Vault signs failed",
			`sum(rate(ghconnect_broker_github_responses_total{class=~"5xx|none"}[$__rate_interval]))`, "GitHub.com 5xx or no answer")).
		WithPanel(series("Features on", "none", "Connections on which each feature works.",
			`max by (feature) (ghconnect_featuregate_features_effective)`, "{{feature}}")).
		WithPanel(series("Account links", "none", "Server users' GitHub.com links by status.",
			`max by (status) (ghconnect_featuregate_account_links)`, "{{status}}"))
}

func brokerDashboard() *dashboard.DashboardBuilder {
	return newDashboard("ghconnect-broker", "ghconnect: token broker",
		"Installation tokens: requests, the cache, Vault signs, GitHub.com exchanges and rate limits, the audit log and the fleet.").
		WithPanel(series("IssueToken by code", "reqps", "IssueToken calls a second by gRPC code.",
			fmt.Sprintf(`sum by (code) (rate(ghconnect_grpc_requests_total{method=%q}[$__rate_interval]))`, issueToken), "{{code}}")).
		WithPanel(series("Cache", "reqps", "Token requests by cache result (hit, miss, exclusive).",
			`sum by (result) (rate(ghconnect_broker_cache_requests_total[$__rate_interval]))`, "{{result}}")).
		WithPanel(series("Cache-hit time", "s", "The broker's own time for a hit (objective: p99 under 10 ms).",
			`histogram_quantile(0.5, sum by (le) (rate(ghconnect_broker_cache_hit_seconds_bucket[$__rate_interval])))`, "p50",
			`histogram_quantile(0.99, sum by (le) (rate(ghconnect_broker_cache_hit_seconds_bucket[$__rate_interval])))`, "p99")).
		WithPanel(series("Vault signs", "ops", "App JWT signatures a second by outcome.",
			`sum by (outcome) (rate(ghconnect_broker_vault_signs_total[$__rate_interval]))`, "{{outcome}}")).
		WithPanel(series("GitHub.com exchanges", "reqps", "Token exchanges by outcome, and GitHub.com's answers by status class.",
			`sum by (outcome) (rate(ghconnect_broker_github_exchanges_total[$__rate_interval]))`, "exchange {{outcome}}",
			`sum by (class) (rate(ghconnect_broker_github_responses_total[$__rate_interval]))`, "answer {{class}}")).
		WithPanel(series("GitHub.com rate limit left", "percentunit", "Share of each installation's hourly rate limit left, as last seen.",
			`max by (installation) (ghconnect_broker_github_ratelimit_remaining) / max by (installation) (ghconnect_broker_github_ratelimit_limit)`, "installation {{installation}}")).
		WithPanel(series("Audit", "ops", "Audit events written, and those that waited for room in the buffer.",
			`sum(rate(ghconnect_broker_audit_events_total[$__rate_interval]))`, "written",
			`sum(rate(ghconnect_broker_audit_backpressure_total[$__rate_interval]))`, "waited")).
		WithPanel(series("Fleet", "ops", "Tokens fetched from their connection's owner by outcome, and offers sent.",
			`sum by (outcome) (rate(ghconnect_broker_peer_fetches_total[$__rate_interval]))`, "fetch {{outcome}}",
			`sum by (outcome) (rate(ghconnect_broker_peer_offers_sent_total[$__rate_interval]))`, "offer {{outcome}}")).
		WithPanel(series("Vault", "none", "Each broker's view of Vault: 1 reachable and unsealed.",
			`ghconnect_vault_up{job="ghconnect-broker"}`, "{{instance}}")).
		WithPanel(series("Certificates", "s", "Time left on each broker's serving certificate.",
			`ghconnect_tls_certificate_expiry_timestamp_seconds{job="ghconnect-broker"} - time()`, "{{instance}}"))
}

func registryDashboard() *dashboard.DashboardBuilder {
	return newDashboard("ghconnect-registry", "ghconnect: connection registry",
		"Connections and their lifecycle: states, disconnects, App key versions, the leased loops and Vault.").
		WithPanel(series("Connections", "none", "Connections by state.",
			`max by (state) (ghconnect_registry_connections)`, "{{state}}")).
		WithPanel(series("Disconnects", "s", "How long finished disconnects took (p95), and the oldest one under way.",
			`histogram_quantile(0.95, sum by (le) (rate(ghconnect_registry_disconnect_seconds_bucket[$__rate_interval])))`, "p95",
			`max(ghconnect_registry_disconnecting_oldest_seconds)`, "oldest under way")).
		WithPanel(series("Key versions", "s", "How long the oldest key version has waited for GitHub.com to accept it.",
			`max(ghconnect_registry_key_version_pending_oldest_seconds)`, "pending")).
		WithPanel(series("Leased loops", "s", "Seconds since each loop's last pass without an error.",
			`time() - max by (loop) (ghconnect_registry_loop_last_success_seconds)`, "{{loop}}")).
		WithPanel(series("Leaders", "none", "Replicas holding each lease (want 1).",
			`sum(ghconnect_registry_reconciler_leader)`, "reconciler",
			`sum(ghconnect_registry_key_follower_leader)`, "key follower")).
		WithPanel(series("Calls", "reqps", "Registry calls a second by method and code.",
			`sum by (method, code) (rate(ghconnect_grpc_requests_total{job="ghconnect-registry"}[$__rate_interval]))`, "{{method}} {{code}}")).
		WithPanel(series("Vault", "none", "Each replica's view of Vault (1 reachable and unsealed), and login failures.",
			`ghconnect_vault_up{job="ghconnect-registry"}`, "{{instance}} up",
			`sum by (instance) (rate(ghconnect_vault_logins_total{job="ghconnect-registry",outcome="error"}[$__rate_interval]))`, "{{instance}} logins failed"))
}

func featuregateDashboard() *dashboard.DashboardBuilder {
	job := func(name, title string) []string {
		return []string{
			fmt.Sprintf(`sum by (result) (increase(ghconnect_featuregate_%s_runs_total[1h]))`, name), title + " {{result}}",
		}
	}
	jobs := slices.Concat(job("advisories_sync", "advisories"), job("license_sync", "license sync"), job("server_statistics", "server statistics"))
	return newDashboard("ghconnect-featuregate", "ghconnect: feature gate",
		"The Connect features: Check, the features on, the users' links and each feature's sync.").
		WithPanel(series("Check", "reqps", "Check calls a second by code.",
			fmt.Sprintf(`sum by (code) (rate(ghconnect_grpc_requests_total{method=%q}[$__rate_interval]))`, check), "{{code}}")).
		WithPanel(series("Check latency", "s", "p50 and p99 of Check.",
			fmt.Sprintf(`histogram_quantile(0.5, sum by (le) (rate(ghconnect_grpc_request_duration_seconds_bucket{method=%q}[$__rate_interval])))`, check), "p50",
			fmt.Sprintf(`histogram_quantile(0.99, sum by (le) (rate(ghconnect_grpc_request_duration_seconds_bucket{method=%q}[$__rate_interval])))`, check), "p99")).
		WithPanel(series("Features on", "none", "Connections on which each feature works.",
			`max by (feature) (ghconnect_featuregate_features_effective)`, "{{feature}}")).
		WithPanel(series("Account links", "none", "Server users' GitHub.com links by status.",
			`max by (status) (ghconnect_featuregate_account_links)`, "{{status}}")).
		WithPanel(series("Syncs", "none", "Runs of each feature's job in the last hour, by result.", jobs...)).
		WithPanel(series("Last successful sync", "s", "Seconds since each job's last run that completed.",
			`time() - max(ghconnect_featuregate_advisories_sync_last_success_seconds > 0)`, "advisories",
			`time() - max(ghconnect_featuregate_license_sync_last_success_seconds > 0)`, "license sync",
			`time() - max(ghconnect_featuregate_server_statistics_last_success_seconds > 0)`, "server statistics")).
		WithPanel(series("Contributions", "none", "Counts waiting in the outbox, and uploads by result.",
			`max(ghconnect_featuregate_contributions_outbox_rows)`, "outbox",
			`sum by (result) (increase(ghconnect_featuregate_contributions_uploads_total[1h]))`, "uploads {{result}} (1h)")).
		WithPanel(series("Actions", "reqps", "Action downloads a second by result.",
			`sum by (result) (rate(ghconnect_featuregate_actions_requests_total[$__rate_interval]))`, "{{result}}"))
}

func gatewayDashboard() *dashboard.DashboardBuilder {
	return newDashboard("ghconnect-gateway", "ghconnect: REST gateway",
		"The REST API, the admin page, single sign-on and GitHub.com's redirects back, by area.").
		WithPanel(series("Requests", "reqps", "Requests a second by area (api, auth, connect, actions, me, page, health) and status code.",
			`sum by (area, code) (rate(ghconnect_gateway_http_requests_total[$__rate_interval]))`, "{{area}} {{code}}")).
		WithPanel(series("Server errors", "percentunit", "Share of each area's requests answered 5xx.",
			`sum by (area) (rate(ghconnect_gateway_http_requests_total{code=~"5.."}[$__rate_interval])) / sum by (area) (rate(ghconnect_gateway_http_requests_total[$__rate_interval]))`, "{{area}}")).
		WithPanel(series("Latency", "s", "p99 of each area's answers.",
			`histogram_quantile(0.99, sum by (le, area) (rate(ghconnect_gateway_http_request_duration_seconds_bucket[$__rate_interval])))`, "{{area}} p99")).
		WithPanel(series("Certificates", "s", "Time left on each gateway's HTTPS certificate.",
			`ghconnect_tls_certificate_expiry_timestamp_seconds{job="ghconnect-gateway"} - time()`, "{{instance}}"))
}

// Dashboards are the dashboards by file name.
func Dashboards() (map[string][]byte, error) {
	out := map[string][]byte{}
	for name, b := range map[string]*dashboard.DashboardBuilder{
		"overview.json":    overview(),
		"broker.json":      brokerDashboard(),
		"registry.json":    registryDashboard(),
		"featuregate.json": featuregateDashboard(),
		"gateway.json":     gatewayDashboard(),
	} {
		d, err := b.Build()
		if err != nil {
			return nil, fmt.Errorf("%s: %w", name, err)
		}
		raw, err := json.MarshalIndent(d, "", "  ")
		if err != nil {
			return nil, err
		}
		out[name] = append(raw, '\n')
	}
	return out, nil
}

// panels is a dashboard's, or a collapsed row's, panels.
type panels struct {
	Panels []struct {
		panels
		Targets []struct {
			Expr string `json:"expr"`
		} `json:"targets"`
	} `json:"panels"`
}

func (p panels) exprs() []string {
	var out []string
	for _, x := range p.Panels {
		for _, t := range x.Targets {
			out = append(out, t.Expr)
		}
		out = append(out, x.exprs()...)
	}
	return out
}

// DashboardQueries are the PromQL expressions of a dashboard's panels,
// those in rows included.
func DashboardQueries(raw []byte) ([]string, error) {
	var d panels
	if err := json.Unmarshal(raw, &d); err != nil {
		return nil, err
	}
	return d.exprs(), nil
}
