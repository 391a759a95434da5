package ghemu

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"sort"
	"strconv"
	"strings"
	"time"
)

// Automatic user license sync: GitHub.com's side of the GitHub Connect
// feature through which a GitHub Enterprise Server reports its users, so
// that a person with accounts on both consumes one license of the
// enterprise, not two.
//
// The upload (POST /connect/license-syncs…) is GitHub Connect's private
// interface, which GitHub does not publish: these routes are OUR
// emulation of it, registered with e.private (counted, rate limited,
// fault-injected, authenticated; never contract-checked). Only hashes
// reach it: SHA-256 (lower-case hex) of each server user's id and of each
// of their email addresses, normalized as strings.ToLower(strings.TrimSpace).
// GitHub matches a server account's primary email with people's verified
// emails; the upload does not mark the primary, so any of a server user's
// email hashes matches.
//
// What an enterprise admin reads back is GitHub's public API, checked
// against ghec.json: GET /enterprises/{enterprise}/consumed-licenses and
// GET /enterprises/{enterprise}/license-sync-status.

// DefaultSeats is the seats an enterprise has purchased until SetSeats
// says otherwise.
const DefaultSeats = 100

// License sync limits: users per batch, email hashes per user, length of
// a server id.
const (
	MaxLicenseUsersPerBatch = 1000
	MaxLicenseEmailsPerUser = 20
	maxServerIDLen          = 100
	maxHostnameLen          = 253
	maxLicenseBody          = 4 << 20
)

// LicenseHash is the lower-case hex SHA-256 of s: how a server sends a
// user id.
func LicenseHash(s string) string {
	sum := sha256.Sum256([]byte(s))
	return hex.EncodeToString(sum[:])
}

// LicenseEmailHash is how a server sends an email address: LicenseHash of
// the address trimmed and lower-cased.
func LicenseEmailHash(email string) string {
	return LicenseHash(normalizeEmail(email))
}

func normalizeEmail(s string) string { return strings.ToLower(strings.TrimSpace(s)) }

// licenseStore is the license data of every enterprise; its maps are made
// on first use (the zero value is ready). Guarded by e.mu.
type licenseStore struct {
	syncs map[string]*licenseSync // by id
	// servers are by lower-case enterprise slug, then server id.
	servers map[string]map[string]*licenseServer
	// uploads are the users batches' bodies each enterprise received, in
	// order, with their server.
	uploads map[string][]licenseUpload
}

type licenseUpload struct {
	serverID string
	body     json.RawMessage
}

// licenseServer is one GitHub Enterprise Server of an enterprise, as
// GitHub.com knows it from its syncs.
type licenseServer struct {
	id, hostname string
	// users are those of the last completed sync, completed its time
	// (zero: none completed yet).
	users     []licenseUser
	completed time.Time
	// current is the unfinished sync, if any.
	current *licenseSync
}

type licenseSync struct {
	id         string
	enterprise string // lower-case slug
	server     *licenseServer
	started    time.Time
	users      []licenseUser
	seen       map[string]bool // user_id_sha256s received
	done       bool
	abandoned  bool // a newer sync of the server started first
}

// licenseUser is one server user as sent: hashes only.
type licenseUser struct {
	UserIDSHA256 string   `json:"user_id_sha256"`
	EmailSHA256s []string `json:"email_sha256s"`
}

func (s *licenseStore) init() {
	if s.syncs == nil {
		s.syncs = map[string]*licenseSync{}
		s.servers = map[string]map[string]*licenseServer{}
		s.uploads = map[string][]licenseUpload{}
	}
}

func (e *Emulator) licenseRoutes() {
	e.private("POST /connect/license-syncs", authToken, e.startLicenseSync)
	e.private("POST /connect/license-syncs/{sync_id}/users", authToken, e.uploadLicenseUsers)
	e.private("POST /connect/license-syncs/{sync_id}/complete", authToken, e.completeLicenseSync)
	e.api("GET /enterprises/{enterprise}/consumed-licenses", authToken, e.getConsumedLicenses)
	e.api("GET /enterprises/{enterprise}/license-sync-status", authToken, e.getLicenseSyncStatus)

	// Controls: people's verified emails, enterprises' seats, and what
	// servers uploaded.
	e.mux.HandleFunc("PUT /_emu/users/{login}/emails", func(w http.ResponseWriter, r *http.Request) {
		var body struct {
			Emails []string `json:"emails"`
		}
		if !decodeAdmin(w, r, &body) {
			return
		}
		if err := e.SetEmails(r.PathValue("login"), body.Emails...); err != nil {
			adminError(w, err)
			return
		}
		w.WriteHeader(http.StatusNoContent)
	})
	e.mux.HandleFunc("PUT /_emu/enterprises/{enterprise}/seats", func(w http.ResponseWriter, r *http.Request) {
		var body struct {
			Seats *int `json:"seats"`
		}
		if !decodeAdmin(w, r, &body) {
			return
		}
		if body.Seats == nil {
			writeJSON(w, http.StatusUnprocessableEntity, map[string]string{"message": "seats is required"})
			return
		}
		if err := e.SetSeats(r.PathValue("enterprise"), *body.Seats); err != nil {
			adminError(w, err)
			return
		}
		w.WriteHeader(http.StatusNoContent)
	})
	e.mux.HandleFunc("GET /_emu/enterprises/{enterprise}/license-uploads", func(w http.ResponseWriter, r *http.Request) {
		out := e.LicenseUploads(r.PathValue("enterprise"))
		if out == nil {
			out = []json.RawMessage{}
		}
		writeJSON(w, http.StatusOK, out)
	})
}

// SetEmails gives a person (an account of type "User") verified email
// addresses, replacing any they had; the first is the primary. No
// addresses clears them. An address another account has verified is
// refused, as GitHub.com refuses it.
func (e *Emulator) SetEmails(login string, emails ...string) error {
	e.mu.Lock()
	defer e.mu.Unlock()
	a := e.account(login)
	if a == nil {
		return fmt.Errorf("ghemu: no account %q: %w", login, errNotFound)
	}
	if a.Type != "User" {
		return fmt.Errorf("ghemu: %s is an %s; only people have email addresses", a.Login, strings.ToLower(a.Type))
	}
	var out []string
	seen := map[string]bool{}
	for _, m := range emails {
		m = strings.TrimSpace(m)
		local, domain, ok := strings.Cut(m, "@")
		if !ok || local == "" || domain == "" || strings.ContainsAny(m, " \t\r\n") || strings.Contains(domain, "@") {
			return fmt.Errorf("ghemu: %q is not an email address", m)
		}
		n := normalizeEmail(m)
		if seen[n] {
			continue
		}
		seen[n] = true
		for _, other := range e.accounts {
			if other == a {
				continue
			}
			for _, o := range other.Emails {
				if normalizeEmail(o) == n {
					return fmt.Errorf("ghemu: %s is already verified by %s", m, other.Login)
				}
			}
		}
		out = append(out, m)
	}
	a.Emails = out
	return nil
}

// SetSeats sets how many licenses an enterprise has purchased
// (total_seats_purchased); until it is called an enterprise has
// DefaultSeats.
func (e *Emulator) SetSeats(enterprise string, seats int) error {
	if seats < 0 {
		return fmt.Errorf("ghemu: seats must be at least 0, not %d", seats)
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	a := e.account(enterprise)
	if a == nil || a.Type != "Enterprise" {
		return fmt.Errorf("ghemu: no enterprise %q: %w", enterprise, errNotFound)
	}
	a.Seats = &seats
	return nil
}

// seatsOf is an enterprise's purchased seats. Callers hold e.mu.
func seatsOf(a *Account) int {
	if a.Seats == nil {
		return DefaultSeats
	}
	return *a.Seats
}

// seedLicenses applies the seed's emails (creating unknown people) and
// seats (creating unknown enterprises).
func (e *Emulator) seedLicenses(emails map[string][]string, seats map[string]int) error {
	logins := make([]string, 0, len(emails))
	for l := range emails {
		logins = append(logins, l)
	}
	sort.Strings(logins) // a conflict is reported the same way every time
	for _, l := range logins {
		e.AddUser(l)
		if err := e.SetEmails(l, emails[l]...); err != nil {
			return err
		}
	}
	for ent, n := range seats {
		e.AddAccount(ent, "Enterprise")
		if err := e.SetSeats(ent, n); err != nil {
			return err
		}
	}
	return nil
}

// LicenseUploads are the bodies of every users batch
// (POST /connect/license-syncs/{id}/users) that reached the enterprise's
// syncs, accepted or refused, in the order received, as sent. A body that
// was not JSON is not kept, nor one an injected fault answered.
func (e *Emulator) LicenseUploads(enterprise string) []json.RawMessage {
	e.mu.Lock()
	defer e.mu.Unlock()
	var out []json.RawMessage
	for _, u := range e.licenses.uploads[strings.ToLower(enterprise)] {
		out = append(out, append(json.RawMessage(nil), u.body...))
	}
	return out
}

// ConsumedLicenses is what GET /enterprises/{enterprise}/consumed-licenses
// counts: consumed is total_seats_consumed (people, each once), serverUsers
// the server accounts of the last completed sync of every server of the
// enterprise (a person on two servers counts twice here).
func (e *Emulator) ConsumedLicenses(enterprise string) (consumed, serverUsers int) {
	e.mu.Lock()
	defer e.mu.Unlock()
	a := e.account(enterprise)
	if a == nil || a.Type != "Enterprise" {
		return 0, 0
	}
	for _, s := range e.licenses.servers[strings.ToLower(a.Login)] {
		serverUsers += len(s.users)
	}
	return len(e.licenseEntries(a)), serverUsers
}

// licenseEnterprise is the enterprise a license-sync request's token is
// for, or nil after answering 422.
func licenseEnterprise(w http.ResponseWriter, id identity) *Account {
	if a := id.installation.Account; a.Type == "Enterprise" {
		return a
	}
	writeError(w, http.StatusUnprocessableEntity, "License sync is available only for enterprise accounts", "")
	return nil
}

// readLicenseBody reads a license-sync body into v, refusing unknown
// fields: 400 for a body that is not JSON, 413 for one over 4 MB, 422 for
// JSON of another shape. It returns the raw body (nil after an answer).
func readLicenseBody(w http.ResponseWriter, r *http.Request, v any) (json.RawMessage, bool) {
	raw, err := io.ReadAll(io.LimitReader(r.Body, maxLicenseBody+1))
	if err != nil {
		writeError(w, http.StatusBadRequest, "Problems parsing JSON", "")
		return nil, false
	}
	if len(raw) > maxLicenseBody {
		writeError(w, http.StatusRequestEntityTooLarge, "The request body is larger than 4 MB", "")
		return nil, false
	}
	if !json.Valid(raw) {
		writeError(w, http.StatusBadRequest, "Problems parsing JSON", "")
		return nil, false
	}
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		writeError(w, http.StatusUnprocessableEntity, "Invalid request: "+strings.TrimPrefix(err.Error(), "json: "), "")
		return nil, false
	}
	return raw, true
}

// startLicenseSync begins a sync of a server's users (a full replacement,
// sent in batches); an unfinished earlier sync of the server is abandoned.
func (e *Emulator) startLicenseSync(w http.ResponseWriter, r *http.Request, id identity) {
	ent := licenseEnterprise(w, id)
	if ent == nil {
		return
	}
	var body struct {
		ServerID string `json:"server_id"`
		Hostname string `json:"hostname"`
	}
	if _, ok := readLicenseBody(w, r, &body); !ok {
		return
	}
	if n := len(body.ServerID); n == 0 || n > maxServerIDLen {
		writeError(w, http.StatusUnprocessableEntity, "server_id must have 1 to "+strconv.Itoa(maxServerIDLen)+" characters", "")
		return
	}
	if n := len(body.Hostname); n == 0 || n > maxHostnameLen || strings.ContainsAny(body.Hostname, " \t\r\n/") {
		writeError(w, http.StatusUnprocessableEntity, "hostname must be a host name", "")
		return
	}
	e.mu.Lock()
	st := &e.licenses
	st.init()
	key := strings.ToLower(ent.Login)
	if st.servers[key] == nil {
		st.servers[key] = map[string]*licenseServer{}
	}
	srv := st.servers[key][body.ServerID]
	if srv == nil {
		srv = &licenseServer{id: body.ServerID}
		st.servers[key][body.ServerID] = srv
	}
	srv.hostname = body.Hostname
	if srv.current != nil {
		srv.current.abandoned = true
	}
	s := &licenseSync{id: "ls_" + randomHex(12), enterprise: key, server: srv, started: e.nowLocked(), seen: map[string]bool{}}
	srv.current = s
	st.syncs[s.id] = s
	e.mu.Unlock()
	writeJSON(w, http.StatusCreated, map[string]any{"id": s.id, "status": "in_progress"})
}

// licenseSyncOf is the sync the path names if it is the token's
// enterprise's, or nil after answering 404. Callers hold e.mu.
func (e *Emulator) licenseSyncOf(w http.ResponseWriter, r *http.Request, ent *Account) *licenseSync {
	s := e.licenses.syncs[r.PathValue("sync_id")]
	if s == nil || s.enterprise != strings.ToLower(ent.Login) {
		writeError(w, http.StatusNotFound, "Not Found", "")
		return nil
	}
	return s
}

// openSync answers 422 for a sync that takes no more: completed or
// abandoned. Callers hold e.mu.
func openSync(w http.ResponseWriter, s *licenseSync) bool {
	switch {
	case s.done:
		writeError(w, http.StatusUnprocessableEntity, "This license sync is already completed", "")
	case s.abandoned:
		writeError(w, http.StatusUnprocessableEntity, "This license sync was abandoned: a newer one started for the server", "")
	default:
		return true
	}
	return false
}

func isSHA256Hex(s string) bool {
	if len(s) != 64 {
		return false
	}
	for i := 0; i < len(s); i++ {
		if c := s[i]; (c < '0' || c > '9') && (c < 'a' || c > 'f') {
			return false
		}
	}
	return true
}

// uploadLicenseUsers adds a batch of users to a sync: all of it, or
// nothing when any entry is refused.
func (e *Emulator) uploadLicenseUsers(w http.ResponseWriter, r *http.Request, id identity) {
	ent := licenseEnterprise(w, id)
	if ent == nil {
		return
	}
	raw, err := io.ReadAll(io.LimitReader(r.Body, maxLicenseBody+1))
	if err != nil {
		writeError(w, http.StatusBadRequest, "Problems parsing JSON", "")
		return
	}
	e.mu.Lock()
	s := e.licenseSyncOf(w, r, ent)
	if s == nil {
		e.mu.Unlock()
		return
	}
	// Kept before any check: a test asserts what the server sent, refused
	// or not.
	if len(raw) <= maxLicenseBody && json.Valid(raw) {
		e.licenses.uploads[s.enterprise] = append(e.licenses.uploads[s.enterprise], licenseUpload{serverID: s.server.id, body: append(json.RawMessage(nil), raw...)})
	}
	e.mu.Unlock()

	r.Body = io.NopCloser(bytes.NewReader(raw))
	var body struct {
		Users []licenseUser `json:"users"`
	}
	if _, ok := readLicenseBody(w, r, &body); !ok {
		return
	}
	if n := len(body.Users); n == 0 || n > MaxLicenseUsersPerBatch {
		writeError(w, http.StatusUnprocessableEntity, "users must hold 1 to "+strconv.Itoa(MaxLicenseUsersPerBatch)+" entries", "")
		return
	}
	inBatch := map[string]bool{}
	for i, u := range body.Users {
		if !isSHA256Hex(u.UserIDSHA256) {
			writeError(w, http.StatusUnprocessableEntity, fmt.Sprintf("users[%d].user_id_sha256 must be 64 lower-case hex digits", i), "")
			return
		}
		if len(u.EmailSHA256s) > MaxLicenseEmailsPerUser {
			writeError(w, http.StatusUnprocessableEntity, fmt.Sprintf("users[%d].email_sha256s holds more than %d entries", i, MaxLicenseEmailsPerUser), "")
			return
		}
		for j, h := range u.EmailSHA256s {
			if !isSHA256Hex(h) {
				writeError(w, http.StatusUnprocessableEntity, fmt.Sprintf("users[%d].email_sha256s[%d] must be 64 lower-case hex digits", i, j), "")
				return
			}
		}
		if inBatch[u.UserIDSHA256] {
			writeError(w, http.StatusUnprocessableEntity, fmt.Sprintf("users[%d].user_id_sha256 is sent twice in this sync", i), "")
			return
		}
		inBatch[u.UserIDSHA256] = true
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	if !openSync(w, s) {
		return
	}
	for i, u := range body.Users {
		if s.seen[u.UserIDSHA256] {
			writeError(w, http.StatusUnprocessableEntity, fmt.Sprintf("users[%d].user_id_sha256 is sent twice in this sync", i), "")
			return
		}
	}
	for _, u := range body.Users {
		s.seen[u.UserIDSHA256] = true
		s.users = append(s.users, licenseUser{UserIDSHA256: u.UserIDSHA256, EmailSHA256s: append([]string{}, u.EmailSHA256s...)})
	}
	writeJSON(w, http.StatusOK, map[string]any{"received": len(body.Users), "total": len(s.users)})
}

// completeLicenseSync makes the sync's users the server's, at once.
func (e *Emulator) completeLicenseSync(w http.ResponseWriter, r *http.Request, id identity) {
	ent := licenseEnterprise(w, id)
	if ent == nil {
		return
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	s := e.licenseSyncOf(w, r, ent)
	if s == nil || !openSync(w, s) {
		return
	}
	s.done = true
	srv := s.server
	srv.users, srv.completed, srv.current = s.users, e.nowLocked(), nil
	s.seen = nil // no more uploads: the set is not needed
	writeJSON(w, http.StatusOK, map[string]any{"status": "success", "users": len(s.users)})
}

// licenseAdminEnterprise is the enterprise the path names if the token's
// installation is on it (by slug or id), or nil after answering 404.
// Callers hold e.mu.
func (e *Emulator) licenseAdminEnterprise(w http.ResponseWriter, r *http.Request, id identity) *Account {
	name := r.PathValue("enterprise")
	a := id.installation.Account
	if a.Type == "Enterprise" && e.account(a.Login) == a &&
		(strings.EqualFold(a.Login, name) || strconv.FormatInt(a.ID, 10) == name) {
		return a
	}
	writeError(w, http.StatusNotFound, "Not Found", "https://docs.github.com/enterprise-cloud@latest/rest/enterprise-admin/licensing")
	return nil
}

// licenseEntry is one person as consumed-licenses lists them: a GitHub.com
// member of the enterprise's organizations, server accounts merged into
// them, or server accounts of nobody on GitHub.com.
type licenseEntry struct {
	person    *Account // nil: server accounts only
	roles     []string // "org:Member"
	serverIDs []string // user_id_sha256s
}

// licenseEntries lists an enterprise's license consumers: the members of
// its organizations by login, then the server accounts no member matched,
// by server id and upload order. A server account merges into the member
// who verified one of its email addresses (the upload does not say which
// is primary); server accounts of no member that share an email address
// (a person on two servers) share one entry. Callers hold e.mu.
func (e *Emulator) licenseEntries(ent *Account) []*licenseEntry {
	var orgs []*Account
	for org, slug := range e.orgEnterprise {
		if a := e.account(org); a != nil && a.Type == "Organization" && strings.EqualFold(slug, ent.Login) {
			orgs = append(orgs, a)
		}
	}
	sort.Slice(orgs, func(i, j int) bool { return strings.ToLower(orgs[i].Login) < strings.ToLower(orgs[j].Login) })
	people := map[*Account]*licenseEntry{}
	for _, org := range orgs {
		for u := range e.members[org] {
			if e.account(u.Login) != u { // replaced by a state file
				continue
			}
			if people[u] == nil {
				people[u] = &licenseEntry{person: u}
			}
			people[u].roles = append(people[u].roles, org.Login+":Member")
		}
	}
	out := make([]*licenseEntry, 0, len(people))
	for _, en := range people {
		out = append(out, en)
	}
	sort.Slice(out, func(i, j int) bool {
		return strings.ToLower(out[i].person.Login) < strings.ToLower(out[j].person.Login)
	})
	byPerson := map[string]*licenseEntry{} // verified email hash → member
	for _, en := range out {
		for _, m := range en.person.Emails {
			byPerson[LicenseEmailHash(m)] = en
		}
	}
	byServer := map[string]*licenseEntry{} // email hash → server-only entry
	servers := e.licenses.servers[strings.ToLower(ent.Login)]
	ids := make([]string, 0, len(servers))
	for sid := range servers {
		ids = append(ids, sid)
	}
	sort.Strings(ids)
	for _, sid := range ids {
		for _, u := range servers[sid].users {
			en := matchEmail(byPerson, u.EmailSHA256s)
			if en == nil {
				en = matchEmail(byServer, u.EmailSHA256s)
			}
			if en == nil {
				en = &licenseEntry{}
				out = append(out, en)
			}
			if en.person == nil {
				for _, h := range u.EmailSHA256s {
					if byServer[h] == nil {
						byServer[h] = en
					}
				}
			}
			en.serverIDs = append(en.serverIDs, u.UserIDSHA256)
		}
	}
	return out
}

// matchEmail is the entry the first of hashes that index names, or nil.
func matchEmail(index map[string]*licenseEntry, hashes []string) *licenseEntry {
	for _, h := range hashes {
		if en := index[h]; en != nil {
			return en
		}
	}
	return nil
}

func (en *licenseEntry) json() map[string]any {
	ids := append([]string{}, en.serverIDs...)
	common := map[string]any{
		"enterprise_server_user_ids":           ids,
		"enterprise_server_user":               len(ids) > 0,
		"enterprise_server_emails":             []string{}, // only hashes reach GitHub.com
		"visual_studio_subscription_user":      false,
		"visual_studio_license_status":         "",
		"visual_studio_subscription_email":     "",
		"license_type":                         "enterprise",
		"github_com_enterprise_roles":          []string{},
		"github_com_verified_domain_emails":    []string{},
		"github_com_orgs_with_pending_invites": []string{},
		"total_user_accounts":                  len(ids),
	}
	if p := en.person; p != nil {
		common["github_com_user"] = true
		common["github_com_login"] = p.Login
		common["github_com_name"] = nilIfEmpty(p.Name)
		common["github_com_profile"] = htmlBase + "/" + p.Login
		common["github_com_member_roles"] = append([]string{}, en.roles...)
		common["github_com_saml_name_id"] = nil
		common["github_com_two_factor_auth"] = nil
		common["total_user_accounts"] = len(ids) + 1
		return common
	}
	common["github_com_user"] = false
	common["github_com_login"] = ""
	common["github_com_name"] = ""
	common["github_com_profile"] = ""
	common["github_com_member_roles"] = []string{}
	common["github_com_saml_name_id"] = ""
	common["github_com_two_factor_auth"] = nil
	return common
}

func (e *Emulator) getConsumedLicenses(w http.ResponseWriter, r *http.Request, id identity) {
	e.mu.Lock()
	ent := e.licenseAdminEnterprise(w, r, id)
	if ent == nil {
		e.mu.Unlock()
		return
	}
	entries := e.licenseEntries(ent)
	from, to := paginate(w, r, len(entries))
	users := make([]any, 0, to-from)
	for _, en := range entries[from:to] {
		users = append(users, en.json())
	}
	seats := seatsOf(ent)
	e.mu.Unlock()
	writeJSON(w, http.StatusOK, map[string]any{
		"total_seats_purchased": seats,
		"total_seats_consumed":  len(entries),
		"users":                 users,
	})
}

// getLicenseSyncStatus lists every server that ever started a sync, by
// server id. last_sync is the last completed sync (its completion time,
// "success") even while a newer one runs; a server with none completed
// shows its running sync ("in_progress", when it started).
func (e *Emulator) getLicenseSyncStatus(w http.ResponseWriter, r *http.Request, id identity) {
	e.mu.Lock()
	ent := e.licenseAdminEnterprise(w, r, id)
	if ent == nil {
		e.mu.Unlock()
		return
	}
	servers := e.licenses.servers[strings.ToLower(ent.Login)]
	ids := make([]string, 0, len(servers))
	for sid := range servers {
		ids = append(ids, sid)
	}
	sort.Strings(ids)
	out := make([]any, 0, len(ids))
	for _, sid := range ids {
		s := servers[sid]
		last := map[string]any{"date": ts(s.completed), "status": "success", "error": ""}
		if s.completed.IsZero() {
			started := time.Time{}
			if s.current != nil {
				started = s.current.started
			}
			last = map[string]any{"date": ts(started), "status": "in_progress", "error": ""}
		}
		out = append(out, map[string]any{"server_id": s.id, "hostname": s.hostname, "last_sync": last})
	}
	e.mu.Unlock()
	writeJSON(w, http.StatusOK, map[string]any{"server_instances": out})
}
