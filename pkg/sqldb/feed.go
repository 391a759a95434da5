package sqldb

import (
	"context"
	"fmt"
)

// Feed reads up to limit rows' column of table, in revision order after
// revision after, optionally of one connection (connectionID empty: all),
// each turned by decode into the value returned (the column holds the
// service's storage form). It is the read side of the services' event
// tables.
func Feed[T any](ctx context.Context, db *DB, table, column, where string, after int64, connectionID string, limit int, decode func(raw []byte) (T, error)) ([]T, error) {
	return feed(ctx, db, table, column, where, "revision > $1", "revision", after, connectionID, limit, decode)
}

// FeedBack is Feed read backwards: up to limit rows before revision
// before (0: from the latest), newest first, for pages of history.
func FeedBack[T any](ctx context.Context, db *DB, table, column string, before int64, connectionID string, limit int, decode func(raw []byte) (T, error)) ([]T, error) {
	cond := "revision < $1"
	if before <= 0 {
		cond = "$1 = 0"
		before = 0
	}
	return feed(ctx, db, table, column, "", cond, "revision DESC", before, connectionID, limit, decode)
}

func feed[T any](ctx context.Context, db *DB, table, column, where, cond, order string, from int64, connectionID string, limit int, decode func([]byte) (T, error)) ([]T, error) {
	q := fmt.Sprintf(`SELECT %s FROM %s WHERE %s`, column, table, cond)
	if where != "" {
		q += " AND " + where
	}
	args := []any{from}
	if connectionID != "" {
		q += ` AND connection_id = $2`
		args = append(args, connectionID)
	}
	q += fmt.Sprintf(` ORDER BY %s LIMIT %d`, order, limit)
	rows, err := db.QueryContext(ctx, q, args...)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []T
	for rows.Next() {
		var raw string
		if err := rows.Scan(&raw); err != nil {
			return nil, err
		}
		m, err := decode([]byte(raw))
		if err != nil {
			return nil, fmt.Errorf("decoding %s: %w", table, err)
		}
		out = append(out, m)
	}
	return out, rows.Err()
}
