package sqldb

import (
	"encoding/base64"
	"errors"
	"strconv"
	"strings"
)

// AllConnections is the connection id that asks for every connection's
// history: AIP-159's wildcard, so REST has a path for it.
const AllConnections = "-"

// ErrBadPageToken is a history page token that is malformed or was made
// for another connection or order.
var ErrBadPageToken = errors.New("malformed page token, or one made for another connection or order")

// HistoryScope is what one history listing reads: one connection's events
// or (ConnectionID empty) every connection's, in one order. Its page
// tokens are valid for it alone.
type HistoryScope struct {
	ConnectionID string
	NewestFirst  bool
}

// NewHistoryScope reads a request's connection id, AllConnections or
// empty meaning every connection.
func NewHistoryScope(connectionID string, newestFirst bool) HistoryScope {
	if connectionID == AllConnections {
		connectionID = ""
	}
	return HistoryScope{ConnectionID: connectionID, NewestFirst: newestFirst}
}

func (h HistoryScope) key() string {
	k := h.ConnectionID
	if k == "" {
		k = AllConnections
	}
	if h.NewestFirst {
		k += ":newest"
	}
	return k
}

// PageToken is the token of the page after the one ending at revision.
func (h HistoryScope) PageToken(revision int64) string {
	return base64.RawURLEncoding.EncodeToString([]byte(strconv.FormatInt(revision, 10) + "/" + h.key()))
}

// From is the revision a page token continues from; "" starts at the
// beginning (0).
func (h HistoryScope) From(token string) (int64, error) {
	if token == "" {
		return 0, nil
	}
	raw, err := base64.RawURLEncoding.DecodeString(token)
	if err != nil {
		return 0, ErrBadPageToken
	}
	revText, key, ok := strings.Cut(string(raw), "/")
	rev, err := strconv.ParseInt(revText, 10, 64)
	if !ok || err != nil || rev <= 0 || key != h.key() {
		return 0, ErrBadPageToken
	}
	return rev, nil
}
