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
	return FeedDecoded(ctx, db, table, column, where, after, connectionID, limit, protojsonDecoder(newT))
}

// FeedBack is Feed read backwards: up to limit messages before revision
// before (0: from the latest), newest first, for pages of history.
func FeedBack[T proto.Message](ctx context.Context, db *DB, table, column string, before int64, connectionID string, limit int, newT func() T) ([]T, error) {
	return FeedBackDecoded(ctx, db, table, column, before, connectionID, limit, protojsonDecoder(newT))
}

// FeedDecoded is Feed for a table whose column holds a form of the
// service's own (its storage types, not protojson): decode turns each
// row's column into the value returned.
func FeedDecoded[T any](ctx context.Context, db *DB, table, column, where string, after int64, connectionID string, limit int, decode func(raw []byte) (T, error)) ([]T, error) {
	return feed(ctx, db, table, column, where, "revision > $1", "revision", after, connectionID, limit, decode)
}

// FeedBackDecoded is FeedBack with a decode of the service's own, as
// FeedDecoded.
func FeedBackDecoded[T any](ctx context.Context, db *DB, table, column string, before int64, connectionID string, limit int, decode func(raw []byte) (T, error)) ([]T, error) {
	cond := "revision < $1"
	if before <= 0 {
		cond = "$1 = 0"
		before = 0
	}
	return feed(ctx, db, table, column, "", cond, "revision DESC", before, connectionID, limit, decode)
}

func protojsonDecoder[T proto.Message](newT func() T) func([]byte) (T, error) {
	return func(raw []byte) (T, error) {
		m := newT()
		return m, protojson.Unmarshal(raw, m)
	}
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
