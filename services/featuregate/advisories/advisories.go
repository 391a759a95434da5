// Package advisories keeps GitHub.com's reviewed global security
// advisories on the feature gate's database (GitHub Connect's Dependabot
// alerts: the server downloads vulnerability data and sends nothing) and
// answers which of them affect a package at a version.
//
// The gate opens its own store first and then this one on the same
// database (Open, or Migrate and New): these migrations, named
// advisories_NNN_…, come after the gate's, whose revision_counter they
// share, so a Watch over advisories and the gate's own events draw
// revisions from one sequence.
package advisories

import (
	"cmp"
	"context"
	"crypto/sha256"
	"database/sql"
	"embed"
	"encoding/hex"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"
	"time"

	"github.com/ghconnect/ghconnect/pkg/sqldb"
	"github.com/ghconnect/ghconnect/pkg/storedjson"
	"github.com/google/go-github/v60/github"
)

//go:embed migrations/*.sql
var migrationFiles embed.FS

// Migrate applies the advisories' migrations to db, after the gate's own
// (which make the revision_counter these share; see the package doc).
func Migrate(ctx context.Context, db *sqldb.DB) error {
	return db.MigrateDir(ctx, migrationFiles, "migrations")
}

// Advisory is an advisory as stored: what the gate serves of GitHub's
// global-advisory, not the API's JSON.
type Advisory struct {
	GHSAID   string
	CVEID    string // empty when GitHub has none
	Summary  string
	Severity string // low, medium, high, critical (or unknown)
	// CVSSScore is nil when GitHub gives no score.
	CVSSScore  *float64
	CVSSVector string
	CWEs       []CWE
	HTMLURL    string
	// PublishedAt and UpdatedAt are GitHub's; WithdrawnAt is zero unless
	// GitHub withdrew the advisory.
	PublishedAt time.Time
	UpdatedAt   time.Time
	WithdrawnAt time.Time
	// Packages are its vulnerable packages (from Affecting: those of the
	// package asked about whose range holds the version).
	Packages []Package
	// Revision is the revision of the advisory's last change.
	Revision int64
}

// Withdrawn says whether GitHub withdrew the advisory.
func (a *Advisory) Withdrawn() bool { return !a.WithdrawnAt.IsZero() }

// CWE is a weakness an advisory names.
type CWE struct {
	ID   string `json:"cwe_id"`
	Name string `json:"name"`
}

// Package is one vulnerable range of a package in an advisory.
type Package struct {
	Ecosystem string // GitHub's name: npm, pip, maven, …
	Name      string // as GitHub spells it
	// VulnerableRange is GitHub's vulnerable_version_range, such as
	// ">= 1.0.0, < 1.2.3".
	VulnerableRange string
	// FirstPatched is empty when no version is patched.
	FirstPatched string
}

// Store holds the advisories in SQL. Its Notifier wakes the readers of
// Changes when this process commits a change.
type Store struct {
	db *sqldb.DB
	sqldb.Notifier
}

// New is a Store on db, whose schema Migrate brought up to date.
func New(db *sqldb.DB) *Store { return &Store{db: db} }

// Open migrates db and returns a Store on it. The Store does not own db:
// whoever opened db closes it.
func Open(ctx context.Context, db *sqldb.DB) (*Store, error) {
	if err := Migrate(ctx, db); err != nil {
		return nil, err
	}
	return New(db), nil
}

// stored is an advisory converted from the API, with its packages keyed
// for lookups.
type stored struct {
	Advisory
	cwes      string
	published int64
	updated   int64
	withdrawn int64
	keys      []string // normalized package names, one per Packages entry
	// hash is the digest of all the above (content_hash).
	hash string
}

func micros(t *github.Timestamp) int64 {
	if t == nil {
		return 0
	}
	return toMicros(t.Time)
}

// toMicros and fromMicros are the stored form of times (sqldb.Micros).
var toMicros, fromMicros = sqldb.Micros, sqldb.FromMicros

// convert checks an advisory from the API and turns it into the stored
// form. A vulnerability without a package names nothing to match and is
// left out; a range Affecting could not read is an error, because storing
// it would make the advisory silently match nothing.
func convert(a *github.GlobalSecurityAdvisory) (*stored, error) {
	if a == nil || a.GetGHSAID() == "" {
		return nil, errors.New("advisories: an advisory without a ghsa_id")
	}
	id := a.GetGHSAID()
	if a.UpdatedAt == nil || a.UpdatedAt.IsZero() {
		return nil, fmt.Errorf("advisories: %s has no updated_at", id)
	}
	s := &stored{
		Advisory: Advisory{
			GHSAID:     id,
			CVEID:      a.GetCVEID(),
			Summary:    a.GetSummary(),
			Severity:   a.GetSeverity(),
			CVSSVector: a.GetCVSS().GetVectorString(),
			HTMLURL:    a.GetHTMLURL(),
		},
		published: micros(a.PublishedAt),
		updated:   micros(a.UpdatedAt),
		withdrawn: micros(a.WithdrawnAt),
	}
	if a.CVSS != nil && a.CVSS.Score != nil {
		score := *a.CVSS.Score
		s.CVSSScore = &score
	}
	s.CWEs = []CWE{}
	for _, c := range a.CWEs {
		s.CWEs = append(s.CWEs, CWE{ID: c.GetCWEID(), Name: c.GetName()})
	}
	raw, err := storedjson.Marshal(s.CWEs)
	if err != nil {
		return nil, err
	}
	s.cwes = string(raw)
	seen := map[[3]string]bool{}
	for _, v := range a.Vulnerabilities {
		if v.GetPackage().GetName() == "" || v.GetPackage().GetEcosystem() == "" {
			continue
		}
		eco := normalizeEcosystem(v.GetPackage().GetEcosystem())
		name := strings.TrimSpace(v.GetPackage().GetName())
		key := normalizeName(eco, name)
		r := strings.TrimSpace(v.GetVulnerableVersionRange())
		if err := checkRange(eco, r); err != nil {
			return nil, fmt.Errorf("advisories: %s, %s package %s: %w", id, eco, name, err)
		}
		// The table's key: the same range of the same package listed
		// twice is one row.
		k := [3]string{eco, key, r}
		if seen[k] {
			continue
		}
		seen[k] = true
		s.Packages = append(s.Packages, Package{Ecosystem: eco, Name: name, VulnerableRange: r, FirstPatched: strings.TrimSpace(v.GetFirstPatchedVersion())})
		s.keys = append(s.keys, key)
	}
	whole, err := storedjson.Marshal(struct {
		Advisory
		Published, Updated, Withdrawn int64
	}{s.Advisory, s.published, s.updated, s.withdrawn})
	if err != nil {
		return nil, err
	}
	sum := sha256.Sum256(whole)
	s.hash = hex.EncodeToString(sum[:])
	return s, nil
}

// Upsert stores a batch of advisories in one transaction; see UpsertPage.
func (s *Store) Upsert(ctx context.Context, advs []*github.GlobalSecurityAdvisory) (changed int, err error) {
	return s.upsert(ctx, advs, time.Time{})
}

// UpsertPage stores a page of advisories and moves the sync cursor to
// cursor in the same transaction, so that after a crash the sync resumes
// from the last page stored in full. The cursor never moves back (a
// replayed page leaves it); a zero cursor leaves it as it is.
//
// An advisory whose updated_at is older than the stored copy's, or the
// same with the same content, changes nothing, so replays and overlapping
// pages are harmless. Each
// advisory that changes gets a new revision (Changes). changed counts
// them. Any invalid advisory fails the whole page, naming it.
func (s *Store) UpsertPage(ctx context.Context, advs []*github.GlobalSecurityAdvisory, cursor time.Time) (changed int, err error) {
	return s.upsert(ctx, advs, cursor)
}

func (s *Store) upsert(ctx context.Context, advs []*github.GlobalSecurityAdvisory, cursor time.Time) (int, error) {
	// Converted and checked before the transaction; within the page only
	// the newest copy of an advisory counts.
	byID := make(map[string]*stored, len(advs))
	for _, a := range advs {
		st, err := convert(a)
		if err != nil {
			return 0, err
		}
		if old := byID[st.GHSAID]; old == nil || st.updated > old.updated {
			byID[st.GHSAID] = st
		}
	}
	batch := make([]*stored, 0, len(byID))
	for _, st := range byID {
		batch = append(batch, st)
	}
	// One order for every writer: two replicas syncing overlapping pages
	// on PostgreSQL lock the rows in the same order and cannot deadlock.
	slices.SortFunc(batch, func(a, b *stored) int { return cmp.Compare(a.GHSAID, b.GHSAID) })
	var changed []string
	err := s.db.InTx(ctx, func(tx *sql.Tx) error {
		changed = changed[:0]
		for _, st := range batch {
			ok, err := upsertTx(ctx, tx, st)
			if err != nil {
				return err
			}
			if ok {
				changed = append(changed, st.GHSAID)
			}
		}
		// Revisions last: NextRevision's lock, which the gate's own
		// writers take too, is held from here to the commit only, not
		// while the page is written.
		if err := setRevisionsTx(ctx, tx, changed); err != nil {
			return err
		}
		if !cursor.IsZero() {
			if _, err := tx.ExecContext(ctx, `UPDATE advisory_sync_cursor SET updated_at = $1 WHERE id = 1 AND updated_at < $1`, cursor.UnixMicro()); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return 0, fmt.Errorf("advisories: upsert: %w", err)
	}
	if len(changed) > 0 {
		s.Notify()
	}
	return len(changed), nil
}

// setRevisionsTx gives each advisory of ids the next revision, in order,
// setting them all in one statement.
func setRevisionsTx(ctx context.Context, tx *sql.Tx, ids []string) error {
	if len(ids) == 0 {
		return nil
	}
	var q strings.Builder
	q.WriteString(`UPDATE advisories SET revision = CASE ghsa_id`)
	args := make([]any, 0, 2*len(ids))
	for _, id := range ids {
		rev, err := sqldb.NextRevision(ctx, tx)
		if err != nil {
			return err
		}
		fmt.Fprintf(&q, " WHEN $%d THEN CAST($%d AS BIGINT)", len(args)+1, len(args)+2)
		args = append(args, id, rev)
	}
	q.WriteString(" END WHERE ghsa_id IN (")
	for i := range ids {
		if i > 0 {
			q.WriteString(", ")
		}
		fmt.Fprintf(&q, "$%d", 2*i+1)
	}
	q.WriteString(")")
	_, err := tx.ExecContext(ctx, q.String(), args...)
	return err
}

// upsertTx writes st unless the stored copy is newer, or as new with the
// same content, and reports whether it wrote. The condition is in the upsert itself, so that a replica
// syncing the same advisory at the same time cannot slip in between a read
// and the write.
func upsertTx(ctx context.Context, tx *sql.Tx, st *stored) (bool, error) {
	res, err := tx.ExecContext(ctx, `INSERT INTO advisories (ghsa_id, cve_id, summary, severity, cvss_score, cvss_vector, cwes, html_url, published_at, updated_at, withdrawn_at, revision, content_hash)
VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, 0, $12)
ON CONFLICT (ghsa_id) DO UPDATE SET cve_id = excluded.cve_id, summary = excluded.summary, severity = excluded.severity, cvss_score = excluded.cvss_score,
  cvss_vector = excluded.cvss_vector, cwes = excluded.cwes, html_url = excluded.html_url, published_at = excluded.published_at,
  updated_at = excluded.updated_at, withdrawn_at = excluded.withdrawn_at, content_hash = excluded.content_hash
WHERE advisories.updated_at < excluded.updated_at
  OR (advisories.updated_at = excluded.updated_at AND advisories.content_hash <> excluded.content_hash)`,
		st.GHSAID, st.CVEID, st.Summary, st.Severity, st.CVSSScore, st.CVSSVector, st.cwes, st.HTMLURL, st.published, st.updated, st.withdrawn, st.hash)
	if err != nil {
		return false, fmt.Errorf("%s: %w", st.GHSAID, err)
	}
	if n, err := res.RowsAffected(); err != nil || n == 0 {
		return false, err
	}
	if _, err := tx.ExecContext(ctx, `DELETE FROM advisory_packages WHERE ghsa_id = $1`, st.GHSAID); err != nil {
		return false, err
	}
	if len(st.Packages) == 0 {
		return true, nil
	}
	// One statement for all of them: a round trip each is most of a
	// page's time on PostgreSQL.
	var q strings.Builder
	q.WriteString(`INSERT INTO advisory_packages (ecosystem, package, ghsa_id, vulnerable_range, package_name, first_patched) VALUES `)
	args := make([]any, 0, 6*len(st.Packages))
	for i, p := range st.Packages {
		if i > 0 {
			q.WriteString(", ")
		}
		n := len(args)
		fmt.Fprintf(&q, "($%d, $%d, $%d, $%d, $%d, $%d)", n+1, n+2, n+3, n+4, n+5, n+6)
		args = append(args, p.Ecosystem, st.keys[i], st.GHSAID, p.VulnerableRange, p.Name, p.FirstPatched)
	}
	if _, err := tx.ExecContext(ctx, q.String(), args...); err != nil {
		return false, fmt.Errorf("%s: %w", st.GHSAID, err)
	}
	return true, nil
}

// Cursor is the newest updated_at synced in full (zero before the first
// sync): where an incremental sync starts.
func (s *Store) Cursor(ctx context.Context) (time.Time, error) {
	var us int64
	if err := s.db.QueryRowContext(ctx, `SELECT updated_at FROM advisory_sync_cursor WHERE id = 1`).Scan(&us); err != nil {
		return time.Time{}, fmt.Errorf("advisories: cursor: %w", err)
	}
	return fromMicros(us), nil
}

const advisoryColumns = `a.ghsa_id, a.cve_id, a.summary, a.severity, a.cvss_score, a.cvss_vector, a.cwes, a.html_url, a.published_at, a.updated_at, a.withdrawn_at, a.revision`

type scanner interface{ Scan(dest ...any) error }

// scanAdvisory reads advisoryColumns and then extra.
func scanAdvisory(row scanner, extra ...any) (*Advisory, error) {
	var a Advisory
	var score sql.NullFloat64
	var cwes string
	var published, updated, withdrawn int64
	dest := append([]any{&a.GHSAID, &a.CVEID, &a.Summary, &a.Severity, &score, &a.CVSSVector, &cwes, &a.HTMLURL, &published, &updated, &withdrawn, &a.Revision}, extra...)
	if err := row.Scan(dest...); err != nil {
		return nil, err
	}
	if score.Valid {
		a.CVSSScore = &score.Float64
	}
	if err := storedjson.Unmarshal([]byte(cwes), &a.CWEs); err != nil {
		return nil, fmt.Errorf("advisories: %s: cwes: %w", a.GHSAID, err)
	}
	a.PublishedAt, a.UpdatedAt, a.WithdrawnAt = fromMicros(published), fromMicros(updated), fromMicros(withdrawn)
	return &a, nil
}

// Changes returns the advisories changed after revision after, in
// revision order, at most limit, each with all its packages: the feed a
// Watch tails (sqldb.Tail). An advisory changed twice since after comes
// once, as it is now. Withdrawn ones come too: a follower must learn of
// the withdrawal.
func (s *Store) Changes(ctx context.Context, after int64, limit int) ([]Advisory, error) {
	rows, err := s.db.QueryContext(ctx, `SELECT `+advisoryColumns+` FROM advisories a WHERE a.revision > $1 ORDER BY a.revision LIMIT $2`, after, limit)
	if err != nil {
		return nil, fmt.Errorf("advisories: changes: %w", err)
	}
	var out []Advisory
	index := map[string]int{}
	ids := []any{}
	for rows.Next() {
		a, err := scanAdvisory(rows)
		if err != nil {
			rows.Close()
			return nil, err
		}
		index[a.GHSAID] = len(out)
		ids = append(ids, a.GHSAID)
		out = append(out, *a)
	}
	if err := rows.Close(); err != nil {
		return nil, err
	}
	if err := rows.Err(); err != nil {
		return nil, err
	}
	if len(out) == 0 {
		return nil, nil
	}
	marks := make([]string, len(ids))
	for i := range ids {
		marks[i] = fmt.Sprintf("$%d", i+1)
	}
	prows, err := s.db.QueryContext(ctx, `SELECT ghsa_id, ecosystem, package_name, vulnerable_range, first_patched FROM advisory_packages WHERE ghsa_id IN (`+strings.Join(marks, ", ")+`) ORDER BY ghsa_id, ecosystem, package, vulnerable_range`, ids...)
	if err != nil {
		return nil, fmt.Errorf("advisories: changes: %w", err)
	}
	defer prows.Close()
	for prows.Next() {
		var id string
		var p Package
		if err := prows.Scan(&id, &p.Ecosystem, &p.Name, &p.VulnerableRange, &p.FirstPatched); err != nil {
			return nil, err
		}
		out[index[id]].Packages = append(out[index[id]].Packages, p)
	}
	return out, prows.Err()
}

// Affecting returns the advisories, withdrawn ones aside, with a
// vulnerable range of package name in ecosystem (GitHub's names: npm, pip,
// maven, rubygems, go, nuget, composer, rust) that holds version, ordered
// by GHSA id. Each carries only the matching ranges in Packages. An
// unknown ecosystem or a version the ecosystem cannot read is
// ErrInvalidQuery.
func (s *Store) Affecting(ctx context.Context, ecosystem, name, version string) ([]Advisory, error) {
	eco := normalizeEcosystem(ecosystem)
	v, err := parseVersion(eco, strings.TrimSpace(version))
	if err != nil {
		return nil, err
	}
	// The ranges first, and only the advisories that match after: a
	// popular package has hundreds of ranges, most of which miss.
	rows, err := s.db.QueryContext(ctx, `SELECT p.ghsa_id, p.package_name, p.vulnerable_range, p.first_patched
FROM advisory_packages p JOIN advisories a ON a.ghsa_id = p.ghsa_id
WHERE p.ecosystem = $1 AND p.package = $2 AND a.withdrawn_at = 0`, eco, normalizeName(eco, name))
	if err != nil {
		return nil, fmt.Errorf("advisories: affecting: %w", err)
	}
	defer rows.Close()
	hits := map[string][]Package{}
	for rows.Next() {
		var id string
		p := Package{Ecosystem: eco}
		if err := rows.Scan(&id, &p.Name, &p.VulnerableRange, &p.FirstPatched); err != nil {
			return nil, err
		}
		hit, err := inRange(v, p.VulnerableRange)
		if err != nil {
			return nil, fmt.Errorf("advisories: %s: %w", id, err)
		}
		if hit {
			hits[id] = append(hits[id], p)
		}
	}
	if err := rows.Err(); err != nil {
		return nil, err
	}
	out, err := s.load(ctx, slices.Sorted(maps.Keys(hits)))
	if err != nil {
		return nil, fmt.Errorf("advisories: affecting: %w", err)
	}
	// One withdrawn between the two reads is left out all the same.
	out = slices.DeleteFunc(out, func(a Advisory) bool { return a.Withdrawn() })
	for i := range out {
		ps := hits[out[i].GHSAID]
		slices.SortFunc(ps, func(a, b Package) int { return cmp.Compare(a.VulnerableRange, b.VulnerableRange) })
		out[i].Packages = ps
	}
	return out, nil
}

// load reads the advisories of ids, in that order (ids are stored).
func (s *Store) load(ctx context.Context, ids []string) ([]Advisory, error) {
	if len(ids) == 0 {
		return nil, nil
	}
	args := make([]any, len(ids))
	marks := make([]string, len(ids))
	for i, id := range ids {
		args[i], marks[i] = id, fmt.Sprintf("$%d", i+1)
	}
	rows, err := s.db.QueryContext(ctx, `SELECT `+advisoryColumns+` FROM advisories a WHERE a.ghsa_id IN (`+strings.Join(marks, ", ")+`)`, args...)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	byID := make(map[string]*Advisory, len(ids))
	for rows.Next() {
		a, err := scanAdvisory(rows)
		if err != nil {
			return nil, err
		}
		byID[a.GHSAID] = a
	}
	if err := rows.Err(); err != nil {
		return nil, err
	}
	out := make([]Advisory, 0, len(ids))
	for _, id := range ids {
		if a := byID[id]; a != nil {
			out = append(out, *a)
		}
	}
	return out, nil
}
