package actions

import (
	"strings"
	"testing"

	registryv1 "github.com/ghconnect/ghconnect/gen/ghconnect/registry/v1"
)

type kind = registryv1.ConnectionAction

// Check finds an enum value without an entry, an entry without words, and
// an entry for a value the enum does not have.
func TestCheckFindsGaps(t *testing.T) {
	values := registryv1.ConnectionAction(0).Descriptor().Values()
	full := map[kind]Entry[string]{}
	for i := range values.Len() {
		if n := values.Get(i).Number(); n != 0 {
			full[kind(n)] = Entry[string]{Stored: string(values.Get(i).Name()), Words: Say[string]("words")}
		}
	}
	if err := NewTable(full).Check(values, ""); err != nil {
		t.Fatalf("a full table: %v", err)
	}
	for name, change := range map[string]func(m map[kind]Entry[string]){
		"has no entry": func(m map[kind]Entry[string]) { delete(m, 1) },
		"has no words": func(m map[kind]Entry[string]) { m[1] = Entry[string]{Stored: "x", Words: Say[string]("")} },
		"entries, the enum": func(m map[kind]Entry[string]) {
			m[999] = Entry[string]{Stored: "extra", Words: Say[string]("extra")}
		},
	} {
		m := map[kind]Entry[string]{}
		for k, v := range full {
			m[k] = v
		}
		change(m)
		if err := NewTable(m).Check(values, ""); err == nil || !strings.Contains(err.Error(), name) {
			t.Errorf("%s: %v", name, err)
		}
	}
}

func TestSummaryOfUnknown(t *testing.T) {
	tab := NewTable(map[kind]Entry[string]{1: {Stored: "create", Words: func(ev string) string { return "made " + ev }}})
	if got := tab.Summary("create", "it"); got != "made it" {
		t.Errorf("known: %q", got)
	}
	if got := tab.Summary("disconnect_step:gone__away", "it"); got != "Change: disconnect step gone away" {
		t.Errorf("unknown: %q", got)
	}
	if tab.Of("nope") != 0 || tab.Of("create") != 1 || tab.Stored(1) != "create" {
		t.Error("Of or Stored")
	}
}
