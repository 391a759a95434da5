package featuregate_test

import (
	"context"
	"fmt"
	"slices"
	"sync"
	"testing"

	featuregatev1 "github.com/ghconnect/ghconnect/gen/ghconnect/featuregate/v1"
	registryv1 "github.com/ghconnect/ghconnect/gen/ghconnect/registry/v1"
	"github.com/ghconnect/ghconnect/services/featuregate"
)

// Two gates share one database and follow the same registry, so each
// registry event reaches the store twice, maybe at once, maybe late. The
// store applies each registry revision once: a copy that arrives after a
// newer revision was applied changes nothing, so a replica that is behind
// cannot put back a state the registry has left, nor append a snapshot
// older than the settings it follows.
func TestRegistryEventsFromTwoGatesApplyOnce(t *testing.T) {
	t.Parallel()
	featuregate.Schema.Stores(t, func(t *testing.T, dsn string) {
		ctx := context.Background()
		a, b := openStore(t, dsn), openStore(t, dsn)

		// Gate a is ahead: connected, search on, then disconnected. Gate
		// b then gets the registry's "connected" event.
		const id = "conn-late"
		if err := featuregate.ApplyRegistry(ctx, a, id, true, allPerms, 1); err != nil {
			t.Fatal(err)
		}
		if err := featuregate.Switch(ctx, a, id, "admin", search, true); err != nil {
			t.Fatal(err)
		}
		if err := featuregate.ApplyRegistry(ctx, a, id, false, allPerms, 2); err != nil {
			t.Fatal(err)
		}
		if err := featuregate.ApplyRegistry(ctx, b, id, true, allPerms, 1); err != nil {
			t.Fatal(err)
		}
		snaps, err := b.Snapshots(ctx, 0, id, 100)
		if err != nil {
			t.Fatal(err)
		}
		var got []string
		for _, s := range snaps {
			got = append(got, fmt.Sprintf("connected=%v search=%v", s.Connected, searchOn(s)))
		}
		want := []string{"connected=true search=false", "connected=true search=true", "connected=false search=false"}
		if fmt.Sprint(got) != fmt.Sprint(want) {
			t.Errorf("snapshots after a late copy of revision 1:\n got %q\nwant %q", got, want)
		}
		if err := featuregate.Switch(ctx, b, id, "admin", search, true); err == nil {
			t.Error("search switched on for a connection the registry disconnected")
		}
		if cur, err := b.RegistryCursor(ctx); err != nil || cur != 2 {
			t.Errorf("registry cursor = %d, %v; want 2", cur, err)
		}

		// Both gates at once, many times: each connection gets one
		// "connected" snapshot, whoever wins.
		var wg sync.WaitGroup
		for i := range 20 {
			id := fmt.Sprintf("conn-%d", i)
			for _, s := range []*featuregate.Store{a, b} {
				wg.Add(1)
				go func() {
					defer wg.Done()
					if err := featuregate.ApplyRegistry(ctx, s, id, true, allPerms, int64(3+i)); err != nil {
						t.Error(err)
					}
				}()
			}
			wg.Wait()
			snaps, err := a.Snapshots(ctx, 0, id, 100)
			if err != nil {
				t.Fatal(err)
			}
			if len(snaps) != 1 {
				t.Fatalf("%s: %d snapshots after both gates applied its registry event; want 1", id, len(snaps))
			}
		}

		// An admin's switch and a registry change of the App's permissions
		// at once, on different gates: the last snapshot holds the switch,
		// whichever committed first.
		morePerms := map[string]string{"administration": "read"}
		for k, v := range allPerms {
			morePerms[k] = v
		}
		for i := range 20 {
			id := fmt.Sprintf("conn-perms-%d", i)
			if err := featuregate.ApplyRegistry(ctx, a, id, true, allPerms, int64(100+2*i)); err != nil {
				t.Fatal(err)
			}
			wg.Add(2)
			go func() {
				defer wg.Done()
				if err := featuregate.Switch(ctx, a, id, "admin", search, true); err != nil {
					t.Error(err)
				}
			}()
			go func() {
				defer wg.Done()
				if err := featuregate.ApplyRegistry(ctx, b, id, true, morePerms, int64(101+2*i)); err != nil {
					t.Error(err)
				}
			}()
			wg.Wait()
			snaps, err := a.Snapshots(ctx, 0, id, 100)
			if err != nil {
				t.Fatal(err)
			}
			if len(snaps) != 3 || !searchOn(snaps[2]) {
				t.Fatalf("%s: last of %d snapshots has search off after it was switched on", id, len(snaps))
			}
		}
	})
}

func searchOn(s *featuregatev1.WatchResponse) bool {
	for _, f := range s.Settings.Features {
		if f.Feature == search {
			return f.Enabled
		}
	}
	return false
}

func openStore(t *testing.T, dsn string) *featuregate.Store {
	t.Helper()
	s, err := featuregate.OpenStore(context.Background(), dsn)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

// A service that saw a change on Watch and then asks Check on the same
// gate gets an answer that includes the change: Watch never sends what
// the gate's view (which Check answers from) does not have yet. The
// replica here follows nothing by itself, so a Watch that ran ahead of
// its view would show it at once; in production the view's follower
// narrows that gap to a race, which is how the disconnect test once saw
// search still effective after its subscribers had the disconnect.
func TestWatchIsNeverAheadOfCheck(t *testing.T) {
	t.Parallel()
	featuregate.Schema.Stores(t, func(t *testing.T, dsn string) {
		a := start(t, dsn)
		b := serveGate(t, a.reg, dsn, featuregate.Options{}, nil, false)
		id := a.connect(t, allPerms)
		if _, err := a.set(t, id, &featuregatev1.FeatureSetting{Feature: search, Enabled: true}); err != nil {
			t.Fatal(err)
		}
		s, err := b.gate.Watch(b.ctx(t, "search-svc"), &featuregatev1.WatchRequest{ConnectionId: id})
		if err != nil {
			t.Fatal(err)
		}
		// The connection goes through four states, each later than the
		// last: not yet connected (the gate may have a snapshot of it
		// from before it saw the registry's event: connect switches
		// search off until the gate knows the connection), connected with
		// search off, with search on (at which the test disconnects it),
		// disconnected. Check may answer from a later state than the
		// event just received, never an earlier one.
		const (
			before = iota - 1
			off
			on
			gone
		)
		reasons := map[featuregatev1.Reason]int{featuregatev1.Reason_REASON_DISABLED: off, featuregatev1.Reason_REASON_EFFECTIVE: on}
		for stage := before; stage != gone; {
			w, err := s.Recv()
			if err != nil {
				t.Fatal(err)
			}
			allowed := []featuregatev1.Reason{featuregatev1.Reason_REASON_DISABLED, featuregatev1.Reason_REASON_EFFECTIVE}
			switch {
			case !w.Connected && stage == before:
				continue // every answer is as late or later
			case !w.Connected:
				stage = gone
				allowed = []featuregatev1.Reason{featuregatev1.Reason_REASON_NOT_CONNECTED}
			case searchOn(w):
				stage = on
				allowed = allowed[1:]
			default:
				stage = off
			}
			if got := b.check(t, id, "mona", search)[0].Reason; !slices.Contains(allowed, got) || (stage != gone && reasons[got] < stage) {
				t.Errorf("revision %d (connected=%v, search on=%v) on Watch, then Check on the same gate: %v; want one of %v",
					w.Revision, w.Connected, searchOn(w), got, allowed)
			}
			if stage == on {
				if _, err := a.reg.Client.Disconnect(a.reg.Ctx(t, "alice"), &registryv1.DisconnectRequest{Id: id}); err != nil {
					t.Fatal(err)
				}
			}
		}
	})
}
