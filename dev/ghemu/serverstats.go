package ghemu

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/getkin/kin-openapi/openapi3"
)

// Server Statistics: GitHub.com's side of GitHub Connect's Server
// Statistics. A GitHub Enterprise Server uploads one item a day (its
// aggregate usage metrics) through a private interface of GitHub Connect
// that GitHub does not publish; POST /connect/server-statistics is our
// emulation of it (e.private: counted, rate limited, fault-injected,
// authenticated, never contract checked). The enterprise or organization
// reads the items back with the public, contract-checked
// GET /enterprise-installation/{enterprise_or_org}/server-statistics
// (ghec.json). An upload must be ONE item of that operation's
// server-statistics schema and nothing more: it is validated against the
// schema with kin-openapi, and any property the schema does not define, at
// any level, is refused.

const (
	serverStatsUploadRoute = "POST /connect/server-statistics"
	serverStatsReadRoute   = "GET /enterprise-installation/{enterprise_or_org}/server-statistics"
	serverStatsReadPath    = "/enterprise-installation/{enterprise_or_org}/server-statistics"
	serverStatsDocs        = "https://docs.github.com/enterprise-cloud@latest/rest/enterprise-admin/admin-stats#get-github-enterprise-server-statistics"
	// ServerStatisticsMaxDays is the longest range one read answers, as
	// GitHub documents ("a specified time period up to 365 days").
	ServerStatisticsMaxDays = 365
)

// serverStatsStore keeps the uploaded items and every body received; its
// zero value is ready. Guarded by e.mu.
type serverStatsStore struct {
	// items are by lower-case account login, then server and day.
	items map[string]map[serverStatsKey]serverStatsItem
	// uploads are the raw bodies of POST /connect/server-statistics by
	// lower-case login of the token's account, in arrival order.
	uploads map[string][]json.RawMessage
}

type serverStatsKey struct {
	server string
	day    string // the collection date's UTC day, YYYY-MM-DD
}

type serverStatsItem struct {
	raw       json.RawMessage // as uploaded, compacted
	server    string
	collected time.Time // the collection date (a date alone: its midnight UTC)
	day       string
}

func (e *Emulator) serverStatsRoutes() {
	// Registered by hand rather than through e.private: the body is kept
	// before faults and authentication, so ServerStatisticsUploads shows
	// everything a server sent, whatever the answer.
	e.mux.HandleFunc(serverStatsUploadRoute, func(w http.ResponseWriter, r *http.Request) {
		var body []byte
		if r.Body != nil {
			body, _ = readAll(r) // r.Body is left readable again
		}
		e.recordServerStatsUpload(r, body)
		e.handleAPI(w, r, serverStatsUploadRoute, authToken, e.postServerStatistics)
	})
	e.api(serverStatsReadRoute, authToken, e.getServerStatistics)
	e.mux.HandleFunc("GET /_emu/server-statistics/{account}", func(w http.ResponseWriter, r *http.Request) {
		writeRawArray(w, http.StatusOK, e.ServerStatistics(r.PathValue("account")))
	})
	e.mux.HandleFunc("GET /_emu/server-statistics/{account}/uploads", func(w http.ResponseWriter, r *http.Request) {
		bodies := e.ServerStatisticsUploads(r.PathValue("account"))
		for i, b := range bodies {
			if !json.Valid(b) { // shown as the text it was
				bodies[i], _ = json.Marshal(string(b))
			}
		}
		writeRawArray(w, http.StatusOK, bodies)
	})
}

// recordServerStatsUpload keeps a body received on the upload route under
// the account of the request's installation token, valid or not (expired,
// revoked); a request without a known installation token is attributed to
// no account and not kept.
func (e *Emulator) recordServerStatsUpload(r *http.Request, body []byte) {
	scheme, raw, has := credentials(r)
	if !has || (scheme != "token" && scheme != "bearer") {
		return
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	t := e.tokens[raw]
	if t == nil || t.installation == nil || t.installation.Account == nil {
		return
	}
	s := &e.serverStats
	if s.uploads == nil {
		s.uploads = map[string][]json.RawMessage{}
	}
	login := strings.ToLower(t.installation.Account.Login)
	s.uploads[login] = append(s.uploads[login], append(json.RawMessage(nil), body...))
}

// postServerStatistics stores one server's statistics of one day for the
// token's account (an organization or an enterprise): 201 for a new
// (server_id, day), 200 when it replaces the item of that server and day.
func (e *Emulator) postServerStatistics(w http.ResponseWriter, r *http.Request, id identity) {
	acct := id.installation.Account
	if acct.Type != "Organization" && acct.Type != "Enterprise" {
		writeError(w, http.StatusForbidden, "Resource not accessible by integration", docsURL)
		return
	}
	raw, err := readAll(r)
	var value any
	if err == nil {
		err = decodeOneJSON(raw, &value)
	}
	if err != nil {
		writeError(w, http.StatusBadRequest, "Problems parsing JSON", docsURL)
		return
	}
	schema, err := e.serverStatsItemSchema()
	if err != nil {
		writeError(w, http.StatusInternalServerError, err.Error(), docsURL)
		return
	}
	problems := validateServerStatsItem(raw, value, schema)
	var item serverStatsItem
	if len(problems) == 0 {
		item, problems = serverStatsItemOf(value)
	}
	if len(problems) > 0 {
		writeJSON(w, http.StatusUnprocessableEntity, map[string]any{
			"message": "Validation Failed", "errors": problems, "documentation_url": serverStatsDocs,
		})
		return
	}
	var buf bytes.Buffer
	_ = json.Compact(&buf, raw) // raw is valid JSON
	item.raw = buf.Bytes()

	login := strings.ToLower(acct.Login)
	e.mu.Lock()
	s := &e.serverStats
	if s.items == nil {
		s.items = map[string]map[serverStatsKey]serverStatsItem{}
	}
	if s.items[login] == nil {
		s.items[login] = map[serverStatsKey]serverStatsItem{}
	}
	k := serverStatsKey{server: item.server, day: item.day}
	_, replaced := s.items[login][k]
	s.items[login][k] = item
	e.mu.Unlock()
	status := http.StatusCreated
	if replaced {
		status = http.StatusOK
	}
	writeJSON(w, status, map[string]any{"server_id": item.server, "collection_date": value.(map[string]any)["collection_date"]})
}

// getServerStatistics answers the account's items collected between
// date_start and date_end (days, both included), by collection date.
func (e *Emulator) getServerStatistics(w http.ResponseWriter, r *http.Request, id identity) {
	name := r.PathValue("enterprise_or_org")
	e.mu.Lock()
	acct := e.account(name)
	now := e.nowLocked()
	e.mu.Unlock()
	if acct == nil || (acct.Type != "Organization" && acct.Type != "Enterprise") || id.installation.Account != acct {
		writeError(w, http.StatusNotFound, "Not Found", serverStatsDocs)
		return
	}
	start, end, problems := serverStatsRange(r.URL.Query(), now)
	if len(problems) > 0 {
		writeJSON(w, http.StatusUnprocessableEntity, map[string]any{
			"message": "Validation Failed", "errors": problems, "documentation_url": serverStatsDocs,
		})
		return
	}
	var out []json.RawMessage
	for _, it := range e.serverStatsItems(acct.Login) {
		if it.day >= start && it.day <= end {
			out = append(out, it.raw)
		}
	}
	writeRawArray(w, http.StatusOK, out)
}

// serverStatsRange reads date_start and date_end (YYYY-MM-DD or an RFC 3339
// date-time, taken as its UTC day) into days. Defaults: no bounds at all
// mean the last 365 days up to today (the emulator's clock, UTC); one
// bound alone means the 365 days from date_start or up to date_end. A
// range over 365 days or with date_start after date_end is refused.
func serverStatsRange(q map[string][]string, now time.Time) (start, end string, problems []map[string]any) {
	parse := func(field string) (time.Time, bool) {
		v := ""
		if vs := q[field]; len(vs) > 0 {
			v = vs[0]
		}
		if v == "" {
			return time.Time{}, false
		}
		t, ok := parseStatsDate(v)
		if !ok {
			problems = append(problems, statsProblem(field, "invalid", field+" must be a date (YYYY-MM-DD) or an RFC 3339 date-time"))
			return time.Time{}, false
		}
		return t, true
	}
	from, hasFrom := parse("date_start")
	to, hasTo := parse("date_end")
	if len(problems) > 0 {
		return "", "", problems
	}
	span := (ServerStatisticsMaxDays - 1) * 24 * time.Hour
	switch {
	case !hasFrom && !hasTo:
		to = utcDay(now)
		from = to.Add(-span)
	case !hasFrom:
		from = to.Add(-span)
	case !hasTo:
		to = from.Add(span)
	}
	switch {
	case from.After(to):
		problems = append(problems, statsProblem("date_start", "invalid", "date_start must not be after date_end"))
	case to.Sub(from) > span:
		problems = append(problems, statsProblem("date_end", "invalid", "the range may cover at most "+strconv.Itoa(ServerStatisticsMaxDays)+" days"))
	}
	return from.Format(time.DateOnly), to.Format(time.DateOnly), problems
}

// parseStatsDate reads a date (its midnight UTC) or an RFC 3339 date-time
// (reduced to its UTC day).
func parseStatsDate(v string) (time.Time, bool) {
	if t, err := time.Parse(time.DateOnly, v); err == nil {
		return t, true
	}
	if t, err := time.Parse(time.RFC3339, v); err == nil {
		return utcDay(t), true
	}
	return time.Time{}, false
}

func utcDay(t time.Time) time.Time {
	t = t.UTC()
	return time.Date(t.Year(), t.Month(), t.Day(), 0, 0, 0, 0, time.UTC)
}

// serverStatsItems are the account's items by collection date, then
// server id.
func (e *Emulator) serverStatsItems(account string) []serverStatsItem {
	e.mu.Lock()
	var out []serverStatsItem
	for _, it := range e.serverStats.items[strings.ToLower(account)] {
		out = append(out, it)
	}
	e.mu.Unlock()
	sort.Slice(out, func(i, j int) bool {
		if !out[i].collected.Equal(out[j].collected) {
			return out[i].collected.Before(out[j].collected)
		}
		return out[i].server < out[j].server
	})
	return out
}

// ServerStatistics is what GitHub.com keeps of an organization's or
// enterprise's Server Statistics: the uploaded items (one per server and
// day, compacted JSON as uploaded), by collection date, then server id.
func (e *Emulator) ServerStatistics(account string) []json.RawMessage {
	items := e.serverStatsItems(account)
	out := make([]json.RawMessage, 0, len(items))
	for _, it := range items {
		out = append(out, append(json.RawMessage(nil), it.raw...))
	}
	return out
}

// ServerStatisticsUploads is every body POST /connect/server-statistics
// received with an installation token of the account, in order, byte for
// byte, whatever the answer (refused, fault-injected, bad token): what
// left the servers. A body may be no JSON at all.
func (e *Emulator) ServerStatisticsUploads(account string) []json.RawMessage {
	e.mu.Lock()
	defer e.mu.Unlock()
	bodies := e.serverStats.uploads[strings.ToLower(account)]
	out := make([]json.RawMessage, 0, len(bodies))
	for _, b := range bodies {
		out = append(out, append(json.RawMessage(nil), b...))
	}
	return out
}

// writeRawArray answers a JSON array of the given JSON values.
func writeRawArray(w http.ResponseWriter, status int, items []json.RawMessage) {
	var buf bytes.Buffer
	buf.WriteByte('[')
	for i, it := range items {
		if i > 0 {
			buf.WriteByte(',')
		}
		buf.Write(it)
	}
	buf.WriteString("]\n")
	w.Header().Set("Content-Type", "application/json; charset=utf-8")
	w.WriteHeader(status)
	w.Write(buf.Bytes())
}

// decodeOneJSON decodes exactly one JSON value, nothing after it.
func decodeOneJSON(raw []byte, v any) error {
	dec := json.NewDecoder(bytes.NewReader(raw))
	if err := dec.Decode(v); err != nil {
		return err
	}
	if _, err := dec.Token(); err != io.EOF {
		return errors.New("data after the JSON value")
	}
	return nil
}

// statsProblem is one entry of a 422's errors, in GitHub's shape.
func statsProblem(field, code, msg string) map[string]any {
	return map[string]any{"resource": "ServerStatistics", "field": field, "code": code, "message": msg}
}

// validateServerStatsItem checks an uploaded item: no member name twice
// in an object, the schema (kin-openapi), and no property the schema does
// not define, at any level. Each problem names its field as a dotted path
// ("ghe_stats.users.extra", "packages_stats.ecosystems[0].name").
func validateServerStatsItem(raw []byte, value any, schema *openapi3.Schema) []map[string]any {
	var problems []map[string]any
	for _, p := range duplicateMembers(raw) {
		problems = append(problems, statsProblem(p, "invalid", p+" appears more than once"))
	}
	if err := schema.VisitJSON(value, openapi3.MultiErrors()); err != nil {
		var found []map[string]any
		for _, se := range schemaErrors(err) {
			field := fieldPath(se.JSONPointer())
			found = append(found, statsProblem(field, "invalid", fieldOrItem(field)+": "+se.Reason))
		}
		sort.SliceStable(found, func(i, j int) bool { return found[i]["field"].(string) < found[j]["field"].(string) })
		problems = append(problems, found...)
	}
	for _, p := range undefinedProperties(value, schema, nil) {
		problems = append(problems, statsProblem(p, "invalid", p+" is not a property of the server-statistics schema"))
	}
	return problems
}

func fieldOrItem(field string) string {
	if field == "" {
		return "the item"
	}
	return field
}

// serverStatsItemOf checks what the emulator requires beyond the schema
// (server_id non-empty, collection_date a date or RFC 3339 date-time,
// schema_version non-empty) and returns the item's key fields.
func serverStatsItemOf(value any) (serverStatsItem, []map[string]any) {
	obj, _ := value.(map[string]any) // the schema made it an object
	var problems []map[string]any
	str := func(field string) string {
		v, ok := obj[field]
		if !ok {
			problems = append(problems, statsProblem(field, "missing_field", field+" is required"))
			return ""
		}
		s, _ := v.(string) // the schema made it a string
		if s == "" {
			problems = append(problems, statsProblem(field, "invalid", field+" must not be empty"))
		}
		return s
	}
	it := serverStatsItem{server: str("server_id")}
	date := str("collection_date")
	str("schema_version")
	if date != "" {
		t, err := time.Parse(time.DateOnly, date)
		if err != nil {
			t, err = time.Parse(time.RFC3339, date)
		}
		if err != nil {
			problems = append(problems, statsProblem("collection_date", "invalid", "collection_date must be a date (YYYY-MM-DD) or an RFC 3339 date-time"))
		}
		it.collected, it.day = t, t.UTC().Format(time.DateOnly)
	}
	return it, problems
}

// schemaErrors flattens kin-openapi's errors into its schema errors.
func schemaErrors(err error) []*openapi3.SchemaError {
	var me openapi3.MultiError
	if errors.As(err, &me) {
		var out []*openapi3.SchemaError
		for _, e := range me {
			out = append(out, schemaErrors(e)...)
		}
		return out
	}
	var se *openapi3.SchemaError
	if errors.As(err, &se) {
		return []*openapi3.SchemaError{se}
	}
	return []*openapi3.SchemaError{{Reason: err.Error()}}
}

// fieldPath renders a path of member names and array indexes as
// "a.b[0].c".
func fieldPath(path []string) string {
	var b strings.Builder
	for _, p := range path {
		if _, err := strconv.Atoi(p); err == nil && b.Len() > 0 {
			b.WriteString("[" + p + "]")
			continue
		}
		if b.Len() > 0 {
			b.WriteByte('.')
		}
		b.WriteString(p)
	}
	return b.String()
}

// undefinedProperties lists the members of objects in value that schema
// does not define: not among the properties (those of the schema and of
// its allOf, anyOf and oneOf) and not allowed by additionalProperties set
// explicitly. Values whose schema is not an object or array schema are
// left to VisitJSON.
func undefinedProperties(value any, schema *openapi3.Schema, path []string) []string {
	if schema == nil {
		return nil
	}
	var out []string
	switch v := value.(type) {
	case map[string]any:
		props := map[string]*openapi3.Schema{}
		collectProperties(schema, props)
		if len(props) == 0 && !schema.Type.Is("object") {
			return nil
		}
		keys := make([]string, 0, len(v))
		for k := range v {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		for _, k := range keys {
			sub := append(append([]string(nil), path...), k)
			switch ps, ok := props[k]; {
			case ok:
				out = append(out, undefinedProperties(v[k], ps, sub)...)
			case schema.AdditionalProperties.Schema != nil && schema.AdditionalProperties.Schema.Value != nil:
				out = append(out, undefinedProperties(v[k], schema.AdditionalProperties.Schema.Value, sub)...)
			case schema.AdditionalProperties.Has != nil && *schema.AdditionalProperties.Has:
			default:
				out = append(out, fieldPath(sub))
			}
		}
	case []any:
		if schema.Items == nil || schema.Items.Value == nil {
			return nil
		}
		for i, x := range v {
			out = append(out, undefinedProperties(x, schema.Items.Value, append(append([]string(nil), path...), strconv.Itoa(i)))...)
		}
	}
	return out
}

func collectProperties(s *openapi3.Schema, into map[string]*openapi3.Schema) {
	for name, p := range s.Properties {
		if p != nil && p.Value != nil {
			into[name] = p.Value
		}
	}
	for _, group := range []openapi3.SchemaRefs{s.AllOf, s.AnyOf, s.OneOf} {
		for _, sub := range group {
			if sub != nil && sub.Value != nil {
				collectProperties(sub.Value, into)
			}
		}
	}
}

// duplicateMembers lists the member names that occur twice in one object
// of raw (valid JSON): Go's decoder would keep the last one silently, and
// the item is stored as uploaded.
func duplicateMembers(raw []byte) []string {
	dec := json.NewDecoder(bytes.NewReader(raw))
	var out []string
	var walk func(path []string) error
	walk = func(path []string) error {
		tok, err := dec.Token()
		if err != nil {
			return err
		}
		switch tok {
		case json.Delim('{'):
			seen := map[string]bool{}
			for dec.More() {
				kt, err := dec.Token()
				if err != nil {
					return err
				}
				k, _ := kt.(string)
				sub := append(append([]string(nil), path...), k)
				if seen[k] {
					out = append(out, fieldPath(sub))
				}
				seen[k] = true
				if err := walk(sub); err != nil {
					return err
				}
			}
			_, err = dec.Token() // '}'
			return err
		case json.Delim('['):
			for i := 0; dec.More(); i++ {
				if err := walk(append(append([]string(nil), path...), strconv.Itoa(i))); err != nil {
					return err
				}
			}
			_, err = dec.Token() // ']'
			return err
		}
		return nil
	}
	_ = walk(nil) // raw was decoded already
	return out
}

// serverStatsItemSchema is the item schema of the read-back's 200 answer
// (the server-statistics schema's items): from the contract's loaded
// description when there is one, else from ghec.json, loaded once per
// process.
func (e *Emulator) serverStatsItemSchema() (*openapi3.Schema, error) {
	if c := e.opts.Contract; c != nil {
		req, _ := http.NewRequest(http.MethodGet, "https://api.github.com/enterprise-installation/x/server-statistics", nil)
		for _, router := range c.routers {
			if route, _, err := router.FindRoute(req); err == nil && route.Operation != nil {
				if s, err := itemSchemaOf(route.Operation); err == nil {
					return s, nil
				}
			}
		}
	}
	standaloneStatsOnce.Do(func() { standaloneStats, standaloneStatsErr = loadServerStatsSchema() })
	return standaloneStats, standaloneStatsErr
}

var (
	standaloneStatsOnce sync.Once
	standaloneStats     *openapi3.Schema
	standaloneStatsErr  error
)

// loadServerStatsSchema loads only the read-back operation of ghec.json
// and what it refers to.
func loadServerStatsSchema() (*openapi3.Schema, error) {
	if err := FetchSpec(); err != nil {
		return nil, fmt.Errorf("ghemu: the server-statistics schema is unavailable: %w", err)
	}
	raw, err := os.ReadFile(filepath.Join(SpecDir(), "ghec.json"))
	if err != nil {
		return nil, fmt.Errorf("ghemu: the server-statistics schema is unavailable: %w", err)
	}
	if raw, err = servedPart(raw, map[string]bool{serverStatsReadRoute: true}); err != nil {
		return nil, fmt.Errorf("ghemu: trimming ghec.json: %w", err)
	}
	doc, err := openapi3.NewLoader().LoadFromData(raw)
	if err != nil {
		return nil, fmt.Errorf("ghemu: loading ghec.json: %w", err)
	}
	item := doc.Paths.Find(serverStatsReadPath)
	if item == nil || item.Get == nil {
		return nil, errors.New("ghemu: ghec.json has no GET " + serverStatsReadPath)
	}
	return itemSchemaOf(item.Get)
}

// itemSchemaOf is the items schema of an operation's JSON 200 array.
func itemSchemaOf(op *openapi3.Operation) (*openapi3.Schema, error) {
	resp := op.Responses.Status(http.StatusOK)
	if resp == nil || resp.Value == nil || resp.Value.Content["application/json"] == nil {
		return nil, errors.New("ghemu: GET " + serverStatsReadPath + " has no JSON 200 response")
	}
	s := resp.Value.Content["application/json"].Schema
	if s == nil || s.Value == nil || s.Value.Items == nil || s.Value.Items.Value == nil {
		return nil, errors.New("ghemu: GET " + serverStatsReadPath + "'s 200 response is no array")
	}
	return s.Value.Items.Value, nil
}
