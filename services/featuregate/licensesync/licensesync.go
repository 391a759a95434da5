// Package licensesync is GitHub Connect's automatic user license sync:
// the server's licensed users, reported by the server and kept hashed, are
// uploaded to the connected enterprise on GitHub.com, which counts a
// person with accounts on both once; GitHub.com's count is then read back
// through its public routes.
//
// What leaves the server is what GitHub documents for license sync, each
// user's id and email addresses, and only as SHA-256 digests: GitHub.com
// matches people by comparing digests of their verified addresses, and a
// digest of an id tells it nothing of the user. No name, login, activity
// or content is kept or sent.
package licensesync

import (
	"context"
	"crypto/sha256"
	"database/sql"
	"embed"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"time"

	"github.com/ghconnect/ghconnect/pkg/sqldb"
	"github.com/google/go-github/v60/github"
)

//go:embed migrations/*.sql
var migrationFiles embed.FS

// Store keeps the licensed users, hashed, and what GitHub.com read back.
type Store struct {
	db *sqldb.DB
}

// Open migrates db (licensesync_NNN migrations, after the gate's) and
// returns the store.
func Open(ctx context.Context, db *sqldb.DB) (*Store, error) {
	if err := db.MigrateDir(ctx, migrationFiles, "migrations"); err != nil {
		return nil, err
	}
	return &Store{db: db}, nil
}

// User is one of the server's users as the server reports it.
type User struct {
	ID     string
	Emails []string
	// Removed: the user no longer consumes a license.
	Removed bool
}

// HashID is the digest of a user id that leaves the server.
func HashID(id string) string { return digest(id) }

// HashEmail is the digest of an email address that leaves the server:
// of the address lowercased and trimmed, as GitHub.com matches them.
func HashEmail(email string) string { return digest(strings.ToLower(strings.TrimSpace(email))) }

func digest(s string) string {
	sum := sha256.Sum256([]byte(s))
	return hex.EncodeToString(sum[:])
}

// Report stores users (hashed on arrival), replacing what was held of
// each, and removes those marked removed; it returns how many it holds.
func (s *Store) Report(ctx context.Context, users []User, now time.Time) (int64, error) {
	err := s.db.InTx(ctx, func(tx *sql.Tx) error {
		for _, u := range users {
			h := HashID(u.ID)
			if u.Removed {
				if _, err := tx.ExecContext(ctx, `DELETE FROM license_users WHERE user_hash = $1`, h); err != nil {
					return err
				}
				continue
			}
			emails := make([]string, 0, len(u.Emails))
			for _, e := range u.Emails {
				emails = append(emails, HashEmail(e))
			}
			slices.Sort(emails)
			body, err := json.Marshal(slices.Compact(emails))
			if err != nil {
				return err
			}
			if _, err := tx.ExecContext(ctx, `INSERT INTO license_users (user_hash, email_hashes, updated_at) VALUES ($1, $2, $3)
				ON CONFLICT (user_hash) DO UPDATE SET email_hashes = excluded.email_hashes, updated_at = excluded.updated_at`,
				h, string(body), now.UnixMicro()); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return 0, fmt.Errorf("licensesync: storing users: %w", err)
	}
	return s.Count(ctx)
}

// Count is how many licensed users the store holds.
func (s *Store) Count(ctx context.Context) (int64, error) {
	var n int64
	if err := s.db.QueryRowContext(ctx, `SELECT COUNT(*) FROM license_users`).Scan(&n); err != nil {
		return 0, fmt.Errorf("licensesync: count: %w", err)
	}
	return n, nil
}

// hashedUser is a user as it is uploaded.
type hashedUser struct {
	UserIDSHA256 string   `json:"user_id_sha256"`
	EmailSHA256s []string `json:"email_sha256s"`
}

// page reads up to n users after the hash after, in hash order.
func (s *Store) page(ctx context.Context, after string, n int) ([]hashedUser, error) {
	rows, err := s.db.QueryContext(ctx, `SELECT user_hash, email_hashes FROM license_users WHERE user_hash > $1 ORDER BY user_hash LIMIT $2`, after, n)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []hashedUser
	for rows.Next() {
		var u hashedUser
		var emails string
		if err := rows.Scan(&u.UserIDSHA256, &emails); err != nil {
			return nil, err
		}
		if err := json.Unmarshal([]byte(emails), &u.EmailSHA256s); err != nil {
			return nil, err
		}
		out = append(out, u)
	}
	return out, rows.Err()
}

// Remote is what GitHub.com read back after an upload.
type Remote struct {
	// SeatsConsumed counts people once across the server and GitHub.com;
	// SeatsPurchased is the enterprise's.
	SeatsConsumed, SeatsPurchased int64
	// SyncStatus and SyncTime are GitHub.com's record of this server's
	// last sync.
	SyncStatus string
	SyncTime   time.Time
}

// Remote reads what GitHub.com said last.
func (s *Store) Remote(ctx context.Context) (Remote, error) {
	var r Remote
	var at int64
	err := s.db.QueryRowContext(ctx, `SELECT seats_consumed, seats_purchased, sync_status, sync_time FROM license_remote WHERE id = 1`).
		Scan(&r.SeatsConsumed, &r.SeatsPurchased, &r.SyncStatus, &at)
	if err != nil {
		return Remote{}, fmt.Errorf("licensesync: remote: %w", err)
	}
	r.SyncTime = sqldb.FromMicros(at)
	return r, nil
}

func (s *Store) saveRemote(ctx context.Context, r Remote) error {
	_, err := s.db.ExecContext(ctx, `UPDATE license_remote SET seats_consumed = $1, seats_purchased = $2, sync_status = $3, sync_time = $4 WHERE id = 1`,
		r.SeatsConsumed, r.SeatsPurchased, r.SyncStatus, sqldb.Micros(r.SyncTime))
	return err
}

// Batch is the most users one upload request carries.
const Batch = 1000

// Upload sends every held user to GitHub.com as one sync of the server
// serverID (named hostname) to the enterprise's account, through GitHub
// Connect's upload interface, then reads back the enterprise's consumed
// licenses and GitHub.com's record of the sync. It returns how many users
// were sent and what was read back.
func Upload(ctx context.Context, gh *github.Client, s *Store, enterprise, serverID, hostname string) (int64, Remote, error) {
	var started struct {
		ID string `json:"id"`
	}
	if err := call(ctx, gh, http.MethodPost, "connect/license-syncs", map[string]string{"server_id": serverID, "hostname": hostname}, &started); err != nil {
		return 0, Remote{}, err
	}
	var sent int64
	after := ""
	for {
		users, err := s.page(ctx, after, Batch)
		if err != nil {
			return sent, Remote{}, fmt.Errorf("licensesync: reading users: %w", err)
		}
		if len(users) == 0 {
			break
		}
		if err := call(ctx, gh, http.MethodPost, "connect/license-syncs/"+started.ID+"/users", map[string]any{"users": users}, nil); err != nil {
			return sent, Remote{}, err
		}
		sent += int64(len(users))
		after = users[len(users)-1].UserIDSHA256
	}
	if err := call(ctx, gh, http.MethodPost, "connect/license-syncs/"+started.ID+"/complete", struct{}{}, nil); err != nil {
		return sent, Remote{}, err
	}
	r, err := readBack(ctx, gh, enterprise, serverID)
	if err != nil {
		return sent, Remote{}, err
	}
	return sent, r, s.saveRemote(ctx, r)
}

// readBack reads the enterprise's consumed licenses and GitHub.com's
// record of the server's last sync, through the public routes.
func readBack(ctx context.Context, gh *github.Client, enterprise, serverID string) (Remote, error) {
	var consumed struct {
		Consumed  int64 `json:"total_seats_consumed"`
		Purchased int64 `json:"total_seats_purchased"`
	}
	if err := call(ctx, gh, http.MethodGet, "enterprises/"+enterprise+"/consumed-licenses?per_page=1", nil, &consumed); err != nil {
		return Remote{}, err
	}
	var status struct {
		Servers []struct {
			ServerID string `json:"server_id"`
			LastSync struct {
				Date   string `json:"date"`
				Status string `json:"status"`
			} `json:"last_sync"`
		} `json:"server_instances"`
	}
	if err := call(ctx, gh, http.MethodGet, "enterprises/"+enterprise+"/license-sync-status", nil, &status); err != nil {
		return Remote{}, err
	}
	r := Remote{SeatsConsumed: consumed.Consumed, SeatsPurchased: consumed.Purchased}
	for _, sv := range status.Servers {
		if sv.ServerID == serverID {
			r.SyncStatus = sv.LastSync.Status
			r.SyncTime, _ = time.Parse(time.RFC3339, sv.LastSync.Date)
		}
	}
	return r, nil
}

// call makes one request of GitHub.com with go-github (its errors, rate
// limits included, are go-github's).
func call(ctx context.Context, gh *github.Client, method, path string, body, out any) error {
	req, err := gh.NewRequest(method, path, body)
	if err != nil {
		return err
	}
	_, err = gh.Do(ctx, req, out)
	return err
}
