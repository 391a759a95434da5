package sqldb

import "context"

// CountsBy runs query, which selects an integer key (an enum's number: a
// state, a status) and a count, as `SELECT state, COUNT(*) … GROUP BY
// state`, and returns the counts by key.
func CountsBy[K ~int32](ctx context.Context, db *DB, query string) (map[K]int64, error) {
	rows, err := db.QueryContext(ctx, query)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	out := map[K]int64{}
	for rows.Next() {
		var k int32
		var n int64
		if err := rows.Scan(&k, &n); err != nil {
			return nil, err
		}
		out[K(k)] = n
	}
	return out, rows.Err()
}
