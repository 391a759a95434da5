package sqldb

import (
	"context"
	"errors"
	"time"
)

// ErrStopping says the server is shutting down; the follower should resume
// elsewhere from the last revision it saw.
var ErrStopping = errors.New("server shutting down; resume from the last revision")

// Tail is the loop behind Watch streams: it sends every row after a
// revision, a batch at a time, then each new row as this process commits it
// (n wakes it) or, for other replicas' commits, within poll. It ends with
// ctx's error, ErrStopping when stop closes, or fetch's or send's error.
func Tail[T any](ctx context.Context, n *Notifier, poll time.Duration, stop <-chan struct{}, after int64, batch int,
	fetch func(ctx context.Context, after int64, limit int) ([]T, error), revision func(T) int64, send func(T) error) error {
	ticker := time.NewTicker(poll)
	defer ticker.Stop()
	for {
		// Taken before the query, so a commit racing with it still wakes us.
		changed := n.Changed()
		rows, err := fetch(ctx, after, batch)
		if err != nil {
			return err
		}
		for _, r := range rows {
			if err := send(r); err != nil {
				return err
			}
			after = revision(r)
		}
		if len(rows) == batch {
			continue
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-stop:
			return ErrStopping
		case <-changed:
		case <-ticker.C:
		}
	}
}
