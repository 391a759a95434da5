package sqldb

import (
	"context"
	"fmt"

	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"
)

// Feed reads up to limit protojson messages from column of table, in
// revision order after revision after, optionally of one connection
// (connectionID empty: all). It is the read side of the services' event
// tables.
func Feed[T proto.Message](ctx context.Context, db *DB, table, column, where string, after int64, connectionID string, limit int, newT func() T) ([]T, error) {
	return feed(ctx, db, table, column, where, "revision > $1", "revision", after, connectionID, limit, newT)
}

// FeedBack is Feed read backwards: up to limit messages before revision
// before (0: from the latest), newest first, for pages of history.
func FeedBack[T proto.Message](ctx context.Context, db *DB, table, column string, before int64, connectionID string, limit int, newT func() T) ([]T, error) {
	cond := "revision < $1"
	if before <= 0 {
		cond = "$1 = 0"
		before = 0
	}
	return feed(ctx, db, table, column, "", cond, "revision DESC", before, connectionID, limit, newT)
}

func feed[T proto.Message](ctx context.Context, db *DB, table, column, where, cond, order string, from int64, connectionID string, limit int, newT func() T) ([]T, error) {
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
		m := newT()
		if err := protojson.Unmarshal([]byte(raw), m); err != nil {
			return nil, fmt.Errorf("decoding %s: %w", table, err)
		}
		out = append(out, m)
	}
	return out, rows.Err()
}
