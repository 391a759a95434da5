package featuregate

import (
	"context"
	"database/sql"
	"fmt"

	featuregatev1 "github.com/ghconnect/ghconnect/gen/ghconnect/featuregate/v1"
	"github.com/ghconnect/ghconnect/pkg/apierr"
)

// The server's users. The gate has no user directory of its own: it
// learns that a person has an account on this server when they sign in
// (the gateway registers them, as themselves) or when an admin provisions
// them. ReportContributions takes counts only of registered users, so a
// count for a login this server never had is refused rather than kept for
// a year. Counts of a registered user are kept whether or not they linked
// a GitHub.com account, so opting in later still sends the past year.

// RegisterUsers implements the RPC.
func (s *Server) RegisterUsers(ctx context.Context, req *featuregatev1.RegisterUsersRequest) (*featuregatev1.RegisterUsersResponse, error) {
	// The request's rules (1 to 10,000 server logins, each once) are
	// checked before the handler.
	users := req.GetUsers()
	if err := forSelf(ctx, users...); err != nil {
		return nil, err
	}
	added, err := s.store.RegisterUsers(ctx, users)
	if err != nil {
		return nil, toStatus(ctx, err)
	}
	return &featuregatev1.RegisterUsersResponse{Added: int32(added)}, nil //nolint:gosec // G115: at most the batch, 10,000
}

// RegisterUsers records server users; it returns how many were new.
func (s *Store) RegisterUsers(ctx context.Context, users []string) (int, error) {
	added := 0
	err := s.db.InTx(ctx, func(tx *sql.Tx) error {
		added = 0
		for _, u := range users {
			n, err := s.registerTx(ctx, tx, u)
			if err != nil {
				return err
			}
			added += n
		}
		return nil
	})
	return added, err
}

// registerTx registers user, if they are not yet; it returns 1 if they
// were new. Linking an account and choosing a feature register the person
// too: only a server user does either.
func (s *Store) registerTx(ctx context.Context, tx *sql.Tx, user string) (int, error) {
	res, err := tx.ExecContext(ctx, `INSERT INTO gate_users (user_login, first_time) VALUES ($1, $2) ON CONFLICT (user_login) DO NOTHING`, user, s.now().UnixMicro())
	if err != nil {
		return 0, err
	}
	n, err := res.RowsAffected()
	return int(n), err
}

// registered is which of users are registered.
func registered(ctx context.Context, q rowsQueryer, users []string) (map[string]bool, error) {
	known := make(map[string]bool, len(users))
	if len(users) == 0 {
		return known, nil
	}
	in, args := inList(users)
	rows, err := q.QueryContext(ctx, `SELECT user_login FROM gate_users WHERE user_login IN (`+in+`)`, args...)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	for rows.Next() {
		var u string
		if err := rows.Scan(&u); err != nil {
			return nil, err
		}
		known[u] = true
	}
	return known, rows.Err()
}

// checkRegistered refuses counts of users who are not registered, each
// with its field.
func (s *Store) checkRegistered(ctx context.Context, counts []*featuregatev1.ContributionCount) error {
	known, err := registered(ctx, s.db, countedUsers(counts))
	if err != nil {
		return toStatus(ctx, err)
	}
	var v apierr.Violations
	for i, c := range counts {
		if !known[c.GetUser()] {
			v.Addf(fmt.Sprintf("counts[%d].user", i), "%s is not a user of this server: nobody of that login has signed in here or been registered (RegisterUsers)", c.GetUser())
		}
	}
	return v.Err()
}
