package registry

// Storage types: what the connections table's record column and the
// connection_events table's event column hold, and the conversions to and
// from the API messages.
//
// Storage has types of its own so that the API and the stored data can
// change apart. Before, the store saved registryv1.Connection and
// registryv1.ConnectionEvent as protojson, so renaming or retyping a field
// in the public .proto silently changed what was stored, and rows written
// before the change no longer read: every API change was a data migration
// nobody wrote. Now an API change only changes the conversions below, and
// a change to the stored form is a change to these types, made on purpose,
// with a migration of the rows (tests pin the stored form to catch one
// made by accident).
//
// The stored form is the JSON the protojson store wrote (UseProtoNames):
// the proto field names as keys, zero values left out, enums by name,
// int64 as decimal strings and timestamps as RFC 3339 in UTC. So rows of
// every earlier version read unchanged, and a registry of the version
// before, beside this one during an upgrade or after a rollback, reads the
// rows this one writes.

import (
	"fmt"

	registryv1 "github.com/ghconnect/ghconnect/gen/ghconnect/registry/v1"
	"github.com/ghconnect/ghconnect/pkg/storedjson"
	"google.golang.org/protobuf/types/known/timestamppb"
)

// storedConnection is a connection as stored: in its row's record column,
// without etag (the row's version column is the etag), and in each of its
// events, with etag (the record as it was right after the change).
type storedConnection struct {
	ID              string            `json:"id,omitempty"`
	State           storedState       `json:"state,omitempty"`
	ServerHostname  string            `json:"server_hostname,omitempty"`
	ServerVersion   string            `json:"server_version,omitempty"`
	License         *storedLicense    `json:"license,omitempty"`
	Account         *storedAccount    `json:"account,omitempty"`
	App             *storedApp        `json:"app,omitempty"`
	InstallationID  storedjson.Int64  `json:"installation_id,omitempty"`
	TransitKey      *storedTransitKey `json:"transit_key,omitempty"`
	Etag            string            `json:"etag,omitempty"`
	CreateTime      *storedjson.Time  `json:"create_time,omitempty"`
	UpdateTime      *storedjson.Time  `json:"update_time,omitempty"`
	ConnectTime     *storedjson.Time  `json:"connect_time,omitempty"`
	DisconnectTime  *storedjson.Time  `json:"disconnect_time,omitempty"`
	CreatedBy       string            `json:"created_by,omitempty"`
	UpdatedBy       string            `json:"updated_by,omitempty"`
	DisconnectSteps []string          `json:"disconnect_steps,omitempty"`
}

// storedLicense is what a connection keeps of the server's license.
type storedLicense struct {
	PublicKey    string           `json:"public_key,omitempty"`
	SHA256       string           `json:"sha256,omitempty"`
	CustomerName string           `json:"customer_name,omitempty"`
	Seats        int32            `json:"seats,omitempty"`
	ExpiresAt    *storedjson.Time `json:"expires_at,omitempty"`
}

// storedAccount is the GitHub.com account a connection is for.
type storedAccount struct {
	Kind  storedAccountKind `json:"kind,omitempty"`
	Login string            `json:"login,omitempty"`
	ID    storedjson.Int64  `json:"id,omitempty"`
}

// storedApp is the GitHub App a connection uses; its secrets only as
// Vault transit ciphertext.
type storedApp struct {
	AppID                   storedjson.Int64  `json:"app_id,omitempty"`
	Slug                    string            `json:"slug,omitempty"`
	ClientID                string            `json:"client_id,omitempty"`
	Permissions             map[string]string `json:"permissions,omitempty"`
	ClientSecretCiphertext  string            `json:"client_secret_ciphertext,omitempty"`
	WebhookSecretCiphertext string            `json:"webhook_secret_ciphertext,omitempty"`
}

// storedTransitKey names the Vault transit key holding the App's private
// key, and its versions in use.
type storedTransitKey struct {
	Mount          string  `json:"mount,omitempty"`
	Name           string  `json:"name,omitempty"`
	Versions       []int32 `json:"versions,omitempty"`
	PendingVersion int32   `json:"pending_version,omitempty"`
	Notice         string  `json:"notice,omitempty"`
}

// storedEvent is one change to a connection, as its history keeps it.
// The API's action_kind and summary are not stored: they are derived from
// action when the event is read (describeEvent), so old rows read in the
// words of this version.
type storedEvent struct {
	Revision          storedjson.Int64  `json:"revision,omitempty"`
	ConnectionID      string            `json:"connection_id,omitempty"`
	Action            string            `json:"action,omitempty"`
	FromState         storedState       `json:"from_state,omitempty"`
	ToState           storedState       `json:"to_state,omitempty"`
	Actor             string            `json:"actor,omitempty"`
	RequestID         string            `json:"request_id,omitempty"`
	Reason            string            `json:"reason,omitempty"`
	EventTime         *storedjson.Time  `json:"event_time,omitempty"`
	Connection        *storedConnection `json:"connection,omitempty"`
	Via               string            `json:"via,omitempty"`
	CompletesRevision storedjson.Int64  `json:"completes_revision,omitempty"`
}

// recordJSON is c as its row's record column holds it: without its etag,
// which the row's version column holds.
func recordJSON(c *registryv1.Connection) ([]byte, error) {
	sc, err := storeConnection(c)
	if err != nil {
		return nil, err
	}
	sc.Etag = ""
	return storedjson.Marshal(sc)
}

// connectionFromRecord reads a record column. The etag is left to the
// caller, from the row's version column.
func connectionFromRecord(raw []byte) (*registryv1.Connection, error) {
	var sc storedConnection
	if err := storedjson.Unmarshal(raw, &sc); err != nil {
		return nil, err
	}
	return sc.connection()
}

// eventJSON is ev as the event column holds it.
func eventJSON(ev *registryv1.ConnectionEvent) ([]byte, error) {
	t, err := storedjson.FromTimestamp(ev.GetEventTime())
	if err != nil {
		return nil, err
	}
	c, err := storeConnection(ev.GetConnection())
	if err != nil {
		return nil, err
	}
	return storedjson.Marshal(&storedEvent{
		Revision:          storedjson.Int64(ev.GetRevision()),
		ConnectionID:      ev.GetConnectionId(),
		Action:            ev.GetAction(),
		FromState:         storedState(ev.GetFromState()),
		ToState:           storedState(ev.GetToState()),
		Actor:             ev.GetActor(),
		RequestID:         ev.GetRequestId(),
		Reason:            ev.GetReason(),
		EventTime:         t,
		Connection:        c,
		Via:               ev.GetVia(),
		CompletesRevision: storedjson.Int64(ev.GetCompletesRevision()),
	})
}

// eventFromJSON reads an event column (without action_kind and summary,
// which describeEvent derives).
func eventFromJSON(raw []byte) (*registryv1.ConnectionEvent, error) {
	var se storedEvent
	if err := storedjson.Unmarshal(raw, &se); err != nil {
		return nil, err
	}
	t, err := se.EventTime.Timestamp()
	if err != nil {
		return nil, err
	}
	var c *registryv1.Connection
	if se.Connection != nil {
		if c, err = se.Connection.connection(); err != nil {
			return nil, err
		}
	}
	return &registryv1.ConnectionEvent{
		Revision:          int64(se.Revision),
		ConnectionId:      se.ConnectionID,
		Action:            se.Action,
		FromState:         registryv1.ConnectionState(se.FromState),
		ToState:           registryv1.ConnectionState(se.ToState),
		Actor:             se.Actor,
		RequestId:         se.RequestID,
		Reason:            se.Reason,
		EventTime:         t,
		Connection:        c,
		Via:               se.Via,
		CompletesRevision: int64(se.CompletesRevision),
	}, nil
}

// storeConnection converts c (nil: none) to its stored form, etag
// included.
func storeConnection(c *registryv1.Connection) (*storedConnection, error) {
	if c == nil {
		return nil, nil
	}
	var times [5]*storedjson.Time
	for i, ts := range []*timestamppb.Timestamp{c.CreateTime, c.UpdateTime, c.ConnectTime, c.DisconnectTime, c.GetLicense().GetExpiresAt()} {
		t, err := storedjson.FromTimestamp(ts)
		if err != nil {
			return nil, fmt.Errorf("connection %s: %w", c.Id, err)
		}
		times[i] = t
	}
	sc := &storedConnection{
		ID:              c.Id,
		State:           storedState(c.State),
		ServerHostname:  c.ServerHostname,
		ServerVersion:   c.ServerVersion,
		InstallationID:  storedjson.Int64(c.InstallationId),
		Etag:            c.Etag,
		CreateTime:      times[0],
		UpdateTime:      times[1],
		ConnectTime:     times[2],
		DisconnectTime:  times[3],
		CreatedBy:       c.CreatedBy,
		UpdatedBy:       c.UpdatedBy,
		DisconnectSteps: c.DisconnectSteps,
	}
	if l := c.License; l != nil {
		sc.License = &storedLicense{PublicKey: l.PublicKey, SHA256: l.Sha256, CustomerName: l.CustomerName, Seats: l.Seats, ExpiresAt: times[4]}
	}
	if a := c.Account; a != nil {
		sc.Account = &storedAccount{Kind: storedAccountKind(a.Kind), Login: a.Login, ID: storedjson.Int64(a.Id)}
	}
	if app := c.App; app != nil {
		sc.App = &storedApp{
			AppID:                   storedjson.Int64(app.AppId),
			Slug:                    app.Slug,
			ClientID:                app.ClientId,
			Permissions:             app.Permissions,
			ClientSecretCiphertext:  app.ClientSecretCiphertext,
			WebhookSecretCiphertext: app.WebhookSecretCiphertext,
		}
	}
	if k := c.TransitKey; k != nil {
		sc.TransitKey = &storedTransitKey{Mount: k.Mount, Name: k.Name, Versions: k.Versions, PendingVersion: k.PendingVersion, Notice: k.Notice}
	}
	return sc, nil
}

// connection converts a stored connection back to the API's.
func (sc *storedConnection) connection() (*registryv1.Connection, error) {
	var times [5]*timestamppb.Timestamp
	var expires *storedjson.Time
	if sc.License != nil {
		expires = sc.License.ExpiresAt
	}
	for i, t := range []*storedjson.Time{sc.CreateTime, sc.UpdateTime, sc.ConnectTime, sc.DisconnectTime, expires} {
		ts, err := t.Timestamp()
		if err != nil {
			return nil, fmt.Errorf("connection %s: %w", sc.ID, err)
		}
		times[i] = ts
	}
	c := &registryv1.Connection{
		Id:              sc.ID,
		State:           registryv1.ConnectionState(sc.State),
		ServerHostname:  sc.ServerHostname,
		ServerVersion:   sc.ServerVersion,
		InstallationId:  int64(sc.InstallationID),
		Etag:            sc.Etag,
		CreateTime:      times[0],
		UpdateTime:      times[1],
		ConnectTime:     times[2],
		DisconnectTime:  times[3],
		CreatedBy:       sc.CreatedBy,
		UpdatedBy:       sc.UpdatedBy,
		DisconnectSteps: sc.DisconnectSteps,
	}
	if l := sc.License; l != nil {
		c.License = &registryv1.License{PublicKey: l.PublicKey, Sha256: l.SHA256, CustomerName: l.CustomerName, Seats: l.Seats, ExpiresAt: times[4]}
	}
	if a := sc.Account; a != nil {
		c.Account = &registryv1.Account{Kind: registryv1.AccountKind(a.Kind), Login: a.Login, Id: int64(a.ID)}
	}
	if app := sc.App; app != nil {
		c.App = &registryv1.GitHubApp{
			AppId:                   int64(app.AppID),
			Slug:                    app.Slug,
			ClientId:                app.ClientID,
			Permissions:             app.Permissions,
			ClientSecretCiphertext:  app.ClientSecretCiphertext,
			WebhookSecretCiphertext: app.WebhookSecretCiphertext,
		}
	}
	if k := sc.TransitKey; k != nil {
		c.TransitKey = &registryv1.TransitKey{Mount: k.Mount, Name: k.Name, Versions: k.Versions, PendingVersion: k.PendingVersion, Notice: k.Notice}
	}
	return c, nil
}

// storedState is a connection state, stored by its name.
type storedState registryv1.ConnectionState

// stateNames are the stored names of the connection states. They are the
// API's names today, listed here so that renaming a state in the API does
// not rename it in stored rows.
var stateNames = storedjson.EnumNames[registryv1.ConnectionState]{
	registryv1.ConnectionState_CONNECTION_STATE_UNSPECIFIED:   "CONNECTION_STATE_UNSPECIFIED",
	registryv1.ConnectionState_CONNECTION_STATE_PENDING:       "CONNECTION_STATE_PENDING",
	registryv1.ConnectionState_CONNECTION_STATE_CONNECTED:     "CONNECTION_STATE_CONNECTED",
	registryv1.ConnectionState_CONNECTION_STATE_DISCONNECTING: "CONNECTION_STATE_DISCONNECTING",
	registryv1.ConnectionState_CONNECTION_STATE_DISCONNECTED:  "CONNECTION_STATE_DISCONNECTED",
}

func (s storedState) MarshalJSON() ([]byte, error) {
	return stateNames.Marshal("connection state", registryv1.ConnectionState(s))
}

func (s *storedState) UnmarshalJSON(raw []byte) error {
	v, err := stateNames.Unmarshal("connection state", raw)
	*s = storedState(v)
	return err
}

// storedAccountKind is an account's kind, stored by its name.
type storedAccountKind registryv1.AccountKind

// accountKindNames are the stored names of the account kinds, as
// stateNames.
var accountKindNames = storedjson.EnumNames[registryv1.AccountKind]{
	registryv1.AccountKind_ACCOUNT_KIND_UNSPECIFIED:  "ACCOUNT_KIND_UNSPECIFIED",
	registryv1.AccountKind_ACCOUNT_KIND_ORGANIZATION: "ACCOUNT_KIND_ORGANIZATION",
	registryv1.AccountKind_ACCOUNT_KIND_ENTERPRISE:   "ACCOUNT_KIND_ENTERPRISE",
}

func (k storedAccountKind) MarshalJSON() ([]byte, error) {
	return accountKindNames.Marshal("account kind", registryv1.AccountKind(k))
}

func (k *storedAccountKind) UnmarshalJSON(raw []byte) error {
	v, err := accountKindNames.Unmarshal("account kind", raw)
	*k = storedAccountKind(v)
	return err
}
