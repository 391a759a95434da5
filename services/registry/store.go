package registry

import (
	"context"
	"database/sql"
	"embed"
	"encoding/base64"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	registryv1 "github.com/ghconnect/ghconnect/gen/ghconnect/registry/v1"
	"github.com/ghconnect/ghconnect/pkg/sqldb"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"
)

//go:embed migrations/*.sql
var migrationFiles embed.FS

// Store errors, mapped to gRPC codes by the server.
var (
	ErrNotFound = errors.New("connection not found")
	// ErrConflict: the etag given is not the current one, or another
	// update won the race.
	ErrConflict = errors.New("connection was changed by someone else; read it again and retry")
	// ErrLive: the server has a live connection already (a LiveError
	// names it).
	ErrLive = errors.New("this server has a live connection already")
	// ErrRequestIDReused: the request id was used for different parameters.
	ErrRequestIDReused = errors.New("request_id was already used for a different request")
)

// Store keeps connections and their history in SQL.
type Store struct {
	db  *sqldb.DB
	now func() time.Time

	sqldb.Notifier
}

// OpenStore opens dsn and brings its schema up to date.
func OpenStore(ctx context.Context, dsn string) (*Store, error) {
	db, err := sqldb.OpenMigrated(ctx, dsn, migrationFiles, "migrations")
	if err != nil {
		return nil, err
	}
	return &Store{db: db, now: time.Now}, nil
}

// Close closes the database.
func (s *Store) Close() error { return s.db.Close() }

// Lease is the lease called name on the store's database: one replica at
// a time holds it (always this one on SQLite).
func (s *Store) Lease(name string) *sqldb.Lease { return s.db.Lease(name) }

// Ping checks the database, for readiness.
func (s *Store) Ping(ctx context.Context) error { return s.db.PingContext(ctx) }

// Change says who changes a connection and why, for the history; the
// move made names what happened.
type Change struct {
	// Actor is the person or service that acts; Via the service that
	// forwarded a person's call (empty for a direct caller).
	Actor     string
	Via       string
	RequestID string
	Reason    string
	// Completes is the revision of the event that began what this change
	// finishes on someone's behalf (the reconciler's disconnect steps).
	Completes int64
}

// activeKey is the active_key column (migration 001): one active
// connection per hostname and account. The live slot (migration 005) is
// the stricter rule now; the key is still written so that a registry of
// the version before, running beside this one during an upgrade, keeps
// its own rule. The kind is its stored name (model.go), so that renaming
// it in the API does not change the key.
func activeKey(c *registryv1.Connection) string {
	return strings.ToLower(c.GetServerHostname() + "|" + accountKindNames[c.GetAccount().GetKind()] + "|" + c.GetAccount().GetLogin())
}

// LiveError refuses a new connection while the server has a live one (a
// server has one connection at a time, as on GHES); Conn is that one.
type LiveError struct {
	Conn *registryv1.Connection
	// again: the refused create was for Conn's own account.
	again bool
}

func (e *LiveError) Error() string {
	what := "another account"
	if e.again {
		what = "it again"
	}
	return fmt.Sprintf("connection %s for %s is %s: disable it before connecting %s", e.Conn.Id, e.Conn.GetAccount().GetLogin(), stateName(e.Conn.State), what)
}

func (e *LiveError) Unwrap() error { return ErrLive }

// liveStates are the states of a live connection, as SQL.
var liveStates = fmt.Sprintf("(%d, %d, %d)", statePending, stateConnected, stateDisconnecting)

// liveTx returns the live connection that blocks a new one (nil: none):
// the holder of the slot, else the newest live one (a database from before
// the rule may hold several, see migrations/005_live_slot.sql).
func liveTx(ctx context.Context, q queryer) (*registryv1.Connection, error) {
	var id string
	err := q.QueryRowContext(ctx, `SELECT id FROM connections WHERE state IN `+liveStates+`
		ORDER BY CASE WHEN live_slot IS NULL THEN 1 ELSE 0 END, create_time DESC, id DESC LIMIT 1`).Scan(&id)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	return getTx(ctx, q, id)
}

// requestSeen reports whether a connection was created by requestID.
func requestSeen(ctx context.Context, q queryer, requestID string) (bool, error) {
	var n int
	err := q.QueryRowContext(ctx, `SELECT COUNT(*) FROM connections WHERE request_id = $1`, requestID).Scan(&n)
	return n > 0, err
}

// Blocking returns the live connection that a create with requestID would
// be refused for, or nil: none is live, or requestID was seen (a retry is
// answered with what it created). Create checks again; this lets a caller
// refuse before it asks GitHub.com anything.
func (s *Store) Blocking(ctx context.Context, requestID string) (*registryv1.Connection, error) {
	live, err := liveTx(ctx, s.db)
	if err != nil || live == nil {
		return nil, err
	}
	// Asked after the live connection was found, so a create of this
	// request committed meanwhile (the live one, maybe) is seen.
	if seen, err := requestSeen(ctx, s.db, requestID); err != nil || seen {
		return nil, err
	}
	return live, nil
}

// createAttempts bounds Create's retries after a unique violation: the
// retry sees the row that won (the same request id, or the live
// connection) and answers with it, so a second violation means the winner
// is already gone again.
const createAttempts = 3

// Create inserts c (state PENDING, holding the live slot) unless its
// request id was seen: then the connection created by that request is
// returned, or ErrRequestIDReused if requestHash differs. While a
// connection is live it is refused with a LiveError naming it.
func (s *Store) Create(ctx context.Context, c *registryv1.Connection, requestHash string, ch Change) (*registryv1.Connection, error) {
	now := s.now()
	c = proto.Clone(c).(*registryv1.Connection)
	c.State = statePending
	c.CreateTime = timestamppb.New(now)
	c.UpdateTime = c.CreateTime
	c.CreatedBy, c.UpdatedBy = ch.Actor, ch.Actor
	c.Etag = "1"
	rec, err := recordJSON(c)
	if err != nil {
		return nil, err
	}
	var out *registryv1.Connection
	for attempt := 1; ; attempt++ {
		err = s.db.InTx(ctx, func(tx *sql.Tx) error {
			// The live connection first, then the request id: on
			// PostgreSQL each statement sees what committed before it, so
			// a create of this same request that committed between the two
			// is answered as a retry, not refused as someone else's.
			live, err := liveTx(ctx, tx)
			if err != nil {
				return err
			}
			var existingID, existingHash string
			err = tx.QueryRowContext(ctx, `SELECT id, request_hash FROM connections WHERE request_id = $1`, ch.RequestID).Scan(&existingID, &existingHash)
			switch {
			case err == nil:
				if existingHash != requestHash {
					return ErrRequestIDReused
				}
				out, err = getTx(ctx, tx, existingID)
				return err
			case !errors.Is(err, sql.ErrNoRows):
				return err
			}
			if live != nil {
				return &LiveError{Conn: live, again: sameAccount(live, c)}
			}
			// Another replica's create may commit between the check and
			// the insert: the slot's unique index refuses the second one.
			if _, err := tx.ExecContext(ctx,
				`INSERT INTO connections (id, request_id, request_hash, state, active_key, live_slot, version, create_time, record) VALUES ($1, $2, $3, $4, $5, 1, 1, $6, $7)`,
				c.Id, ch.RequestID, requestHash, int32(c.State), activeKey(c), now.UnixMicro(), string(rec)); err != nil {
				return err
			}
			if err := appendEvent(ctx, tx, c, registryv1.ConnectionState_CONNECTION_STATE_UNSPECIFIED, history.Stored(actionCreate), ch, now); err != nil {
				return err
			}
			out = c
			return nil
		})
		if !sqldb.IsUniqueViolation(err) {
			break
		}
		if attempt == createAttempts {
			return nil, ErrConflict
		}
	}
	if err != nil {
		return nil, err
	}
	s.Notify()
	return out, nil
}

// sameAccount reports whether a and b are for the same GitHub.com account.
func sameAccount(a, b *registryv1.Connection) bool {
	return a.GetAccount().GetKind() == b.GetAccount().GetKind() && strings.EqualFold(a.GetAccount().GetLogin(), b.GetAccount().GetLogin())
}

// Update makes move m on connection id inside a transaction: etag, when
// not empty, must be the current one, and m's rule is checked against the
// record as stored (a refusal is a TransitionError). The history records m
// by its action.
func (s *Store) Update(ctx context.Context, id, etag string, m Move, ch Change) (*registryv1.Connection, error) {
	var out *registryv1.Connection
	err := s.db.InTx(ctx, func(tx *sql.Tx) error {
		c, err := getTx(ctx, tx, id)
		if err != nil {
			return err
		}
		if etag != "" && etag != c.Etag {
			return ErrConflict
		}
		from := c.State
		version, _ := strconv.ParseInt(c.Etag, 10, 64)
		now := s.now()
		if err := m.make(c, now); err != nil {
			return err
		}
		c.UpdateTime = timestamppb.New(now)
		c.UpdatedBy = ch.Actor
		c.Etag = strconv.FormatInt(version+1, 10)
		var active any = activeKey(c)
		// A live connection keeps the slot it has (one from before the
		// rule may have none); a DISCONNECTED one gives it back.
		keepSlot := "live_slot"
		if disconnected(c) {
			active, keepSlot = nil, "NULL"
		}
		rec, err := recordJSON(c)
		if err != nil {
			return err
		}
		res, err := tx.ExecContext(ctx,
			`UPDATE connections SET state = $1, active_key = $2, live_slot = `+keepSlot+`, version = $3, record = $4 WHERE id = $5 AND version = $6`,
			int32(c.State), active, version+1, string(rec), id, version)
		if err != nil {
			return err
		}
		if n, err := res.RowsAffected(); err != nil {
			return err
		} else if n != 1 {
			return ErrConflict
		}
		if err := appendEvent(ctx, tx, c, from, m.Action(), ch, now); err != nil {
			return err
		}
		out = c
		return nil
	})
	if err != nil {
		return nil, err
	}
	s.Notify()
	return out, nil
}

func appendEvent(ctx context.Context, tx *sql.Tx, c *registryv1.Connection, from registryv1.ConnectionState, action string, ch Change, now time.Time) error {
	rev, err := sqldb.NextRevision(ctx, tx)
	if err != nil {
		return err
	}
	ev := &registryv1.ConnectionEvent{
		Revision:          rev,
		ConnectionId:      c.Id,
		Action:            action,
		FromState:         from,
		ToState:           c.State,
		Actor:             ch.Actor,
		Via:               ch.Via,
		RequestId:         ch.RequestID,
		Reason:            ch.Reason,
		EventTime:         timestamppb.New(now),
		Connection:        c,
		CompletesRevision: ch.Completes,
	}
	b, err := eventJSON(ev)
	if err != nil {
		return err
	}
	_, err = tx.ExecContext(ctx, `INSERT INTO connection_events (revision, connection_id, via, event) VALUES ($1, $2, $3, $4)`, rev, c.Id, ch.Via, string(b))
	return err
}

type queryer interface {
	QueryRowContext(ctx context.Context, query string, args ...any) *sql.Row
}

func getTx(ctx context.Context, q queryer, id string) (*registryv1.Connection, error) {
	var rec string
	var version int64
	err := q.QueryRowContext(ctx, `SELECT record, version FROM connections WHERE id = $1`, id).Scan(&rec, &version)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, ErrNotFound
	}
	if err != nil {
		return nil, err
	}
	c, err := connectionFromRecord([]byte(rec))
	if err != nil {
		return nil, fmt.Errorf("decode connection %s: %w", id, err)
	}
	c.Etag = strconv.FormatInt(version, 10)
	return c, nil
}

// Get returns one connection.
func (s *Store) Get(ctx context.Context, id string) (*registryv1.Connection, error) {
	return getTx(ctx, s.db, id)
}

// pageCursor is the position after the last item of a page.
type pageCursor struct {
	time int64
	id   string
}

func encodeCursor(c pageCursor) string {
	return base64.RawURLEncoding.EncodeToString([]byte(strconv.FormatInt(c.time, 10) + "/" + c.id))
}

func decodeCursor(tok string) (pageCursor, error) {
	raw, err := base64.RawURLEncoding.DecodeString(tok)
	if err != nil {
		return pageCursor{}, errors.New("malformed page token")
	}
	ts, id, ok := strings.Cut(string(raw), "/")
	t, err := strconv.ParseInt(ts, 10, 64)
	if !ok || err != nil || id == "" {
		return pageCursor{}, errors.New("malformed page token")
	}
	return pageCursor{time: t, id: id}, nil
}

// List returns up to size connections newest first, after the page token,
// in the given states (all when empty), and the next page token.
func (s *Store) List(ctx context.Context, size int, pageToken string, states []registryv1.ConnectionState) ([]*registryv1.Connection, string, error) {
	q := `SELECT record, version, create_time, id FROM connections WHERE 1=1`
	var args []any
	arg := func(v any) string { args = append(args, v); return "$" + strconv.Itoa(len(args)) }
	if pageToken != "" {
		cur, err := decodeCursor(pageToken)
		if err != nil {
			return nil, "", err
		}
		t, id := arg(cur.time), arg(cur.id)
		q += ` AND (create_time < ` + t + ` OR (create_time = ` + t + ` AND id < ` + id + `))`
	}
	if len(states) > 0 {
		ph := make([]string, len(states))
		for i, st := range states {
			ph[i] = arg(int32(st))
		}
		q += ` AND state IN (` + strings.Join(ph, ", ") + `)`
	}
	q += ` ORDER BY create_time DESC, id DESC LIMIT ` + arg(size+1)
	rows, err := s.db.QueryContext(ctx, q, args...)
	if err != nil {
		return nil, "", err
	}
	defer rows.Close()
	var out []*registryv1.Connection
	var last pageCursor
	for rows.Next() {
		var rec string
		var version, ct int64
		var id string
		if err := rows.Scan(&rec, &version, &ct, &id); err != nil {
			return nil, "", err
		}
		if len(out) == size {
			return out, encodeCursor(last), rows.Err()
		}
		c, err := connectionFromRecord([]byte(rec))
		if err != nil {
			return nil, "", fmt.Errorf("decode connection %s: %w", id, err)
		}
		c.Etag = strconv.FormatInt(version, 10)
		out = append(out, c)
		last = pageCursor{time: ct, id: id}
	}
	return out, "", rows.Err()
}

// Events returns up to limit events with revision > after, oldest first,
// of one connection or (connectionID empty) of all.
func (s *Store) Events(ctx context.Context, after int64, connectionID string, limit int) ([]*registryv1.ConnectionEvent, error) {
	return described(sqldb.Feed(ctx, s.db, "connection_events", "event", "", after, connectionID, limit, eventFromJSON))
}

// described fills each event's action_kind and summary (describeEvent):
// derived when read, never stored, so rows of every version read in the
// words of this one.
func described(evs []*registryv1.ConnectionEvent, err error) ([]*registryv1.ConnectionEvent, error) {
	for _, ev := range evs {
		describeEvent(ev)
	}
	return evs, err
}

// History returns up to limit events of the scope's connection (or all)
// after revision from, oldest first, or when the scope is newest first
// before it (from 0: from the latest), newest first.
func (s *Store) History(ctx context.Context, scope sqldb.HistoryScope, from int64, limit int) ([]*registryv1.ConnectionEvent, error) {
	if !scope.NewestFirst {
		return s.Events(ctx, from, scope.ConnectionID, limit)
	}
	return described(sqldb.FeedBack(ctx, s.db, "connection_events", "event", from, scope.ConnectionID, limit, eventFromJSON))
}

// ResumeChange is the change an actor that finishes someone else's
// disconnect (the reconciler) records: it names the event that began the
// disconnect, who asked for it and through what.
func (s *Store) ResumeChange(ctx context.Context, id, actor string) (Change, error) {
	ch := Change{Actor: actor, Reason: "completes an interrupted disconnect"}
	// A connection's history is short, and the disconnect began near its
	// end: read back from the latest event.
	var begin *registryv1.ConnectionEvent
	for from := int64(0); begin == nil; {
		page, err := s.History(ctx, sqldb.HistoryScope{ConnectionID: id, NewestFirst: true}, from, 50)
		if err != nil {
			return Change{}, err
		}
		if len(page) == 0 {
			return ch, nil
		}
		for _, ev := range page {
			if history.Of(ev.Action) == actionBeginDisconnect {
				begin = ev
				break
			}
		}
		from = page[len(page)-1].Revision
	}
	ch.Completes = begin.Revision
	ch.Reason = "completes disconnect requested by " + begin.Actor
	if begin.Via != "" {
		ch.Reason += " via " + begin.Via
	}
	if begin.RequestId != "" {
		ch.Reason += fmt.Sprintf(" (request %s, event %d)", begin.RequestId, begin.Revision)
	} else {
		ch.Reason += fmt.Sprintf(" (event %d)", begin.Revision)
	}
	if begin.Reason != "" {
		ch.Reason += ": " + begin.Reason
	}
	return ch, nil
}

// ErrBadState is a redirect state that is unknown, used, expired or of
// another step.
var ErrBadState = errors.New("the state is unknown, already used or expired; start again")

// PutState records a single-use redirect state (by its hash) for a step of
// a connection; owner is the person whose browser must bring it back
// (empty: anyone's who may call the step).
func (s *Store) PutState(ctx context.Context, stateHash, connectionID, kind, owner string, expires time.Time) error {
	_, err := s.db.ExecContext(ctx, `INSERT INTO redirect_states (state_sha256, connection_id, kind, owner, expires, used) VALUES ($1, $2, $3, $4, $5, 0)`,
		stateHash, connectionID, kind, owner, expires.UnixMicro())
	return err
}

// PeekState returns the connection and owner of a live state without
// using it.
func (s *Store) PeekState(ctx context.Context, stateHash, kind string) (connectionID, owner string, err error) {
	err = s.db.QueryRowContext(ctx, `SELECT connection_id, owner FROM redirect_states WHERE state_sha256 = $1 AND kind = $2 AND used = 0 AND expires > $3`,
		stateHash, kind, s.now().UnixMicro()).Scan(&connectionID, &owner)
	if errors.Is(err, sql.ErrNoRows) {
		return "", "", ErrBadState
	}
	return connectionID, owner, err
}

// UseState marks a live state used; only one caller can.
func (s *Store) UseState(ctx context.Context, stateHash, kind string) error {
	res, err := s.db.ExecContext(ctx, `UPDATE redirect_states SET used = 1 WHERE state_sha256 = $1 AND kind = $2 AND used = 0 AND expires > $3`,
		stateHash, kind, s.now().UnixMicro())
	if err != nil {
		return err
	}
	if n, _ := res.RowsAffected(); n != 1 {
		return ErrBadState
	}
	return nil
}

// InState lists the connections in a state.
func (s *Store) InState(ctx context.Context, st registryv1.ConnectionState) ([]*registryv1.Connection, error) {
	var out []*registryv1.Connection
	tok := ""
	for {
		page, next, err := s.List(ctx, 100, tok, []registryv1.ConnectionState{st})
		if err != nil {
			return nil, err
		}
		out = append(out, page...)
		if next == "" {
			return out, nil
		}
		tok = next
	}
}
