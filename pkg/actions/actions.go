// Package actions holds a service's history vocabulary in one table: each
// value of the service's action enum (its proto) with the name its history
// stores and the words people read, so that the services write, compare
// and describe actions by the enum and the admin page shows the words the
// API serves.
package actions

import (
	"fmt"
	"regexp"

	"google.golang.org/protobuf/reflect/protoreflect"
)

// Entry is one action: the name the history stores (kept as stored: rows
// are never rewritten) and its words for an event Ev.
type Entry[Ev any] struct {
	Stored string
	Words  func(ev Ev) string
}

// Say is words that need nothing of the event.
func Say[Ev any](words string) func(Ev) string {
	return func(Ev) string { return words }
}

// Table is a service's actions, E its enum, Ev its history event.
type Table[E ~int32, Ev any] struct {
	entries  map[E]Entry[Ev]
	byStored map[string]E
}

// NewTable makes the table of entries. Two actions stored under one name
// is a programming error: it panics (at start-up, the tables being
// package variables).
func NewTable[E ~int32, Ev any](entries map[E]Entry[Ev]) *Table[E, Ev] {
	t := &Table[E, Ev]{entries: entries, byStored: map[string]E{}}
	for e, en := range entries {
		if prev, dup := t.byStored[en.Stored]; dup {
			panic(fmt.Sprintf("actions %d and %d are both stored as %q", prev, e, en.Stored))
		}
		t.byStored[en.Stored] = e
	}
	return t
}

// Stored is the name the history stores for e; empty for an action not in
// the table.
func (t *Table[E, Ev]) Stored(e E) string { return t.entries[e].Stored }

// Of is the action stored as name; the zero value (UNSPECIFIED) when the
// table does not know it.
func (t *Table[E, Ev]) Of(name string) E { return t.byStored[name] }

// Summary says in words what the event, stored as name, did; an action the
// table does not know (a row of another version) is said by its name.
func (t *Table[E, Ev]) Summary(name string, ev Ev) string {
	if e, ok := t.byStored[name]; ok {
		if w := t.entries[e].Words(ev); w != "" {
			return w
		}
	}
	return Unknown(name)
}

var separators = regexp.MustCompile(`[_:]+`)

// Unknown is what an action without words of its own says: its name as
// words, not as a code.
func Unknown(name string) string {
	return "Change: " + separators.ReplaceAllString(name, " ")
}

// Check says whether the table and the enum (its values' descriptors)
// agree: every value but the zero one has an entry with a stored name and
// words for sample, and every entry is a value of the enum.
func (t *Table[E, Ev]) Check(values protoreflect.EnumValueDescriptors, sample Ev) error {
	seen := 0
	for i := range values.Len() {
		v := values.Get(i)
		if v.Number() == 0 {
			if _, ok := t.entries[0]; ok {
				return fmt.Errorf("%s has an entry: the zero value is an action not known", v.Name())
			}
			continue
		}
		en, ok := t.entries[E(v.Number())]
		switch {
		case !ok:
			return fmt.Errorf("%s has no entry", v.Name())
		case en.Stored == "":
			return fmt.Errorf("%s has no stored name", v.Name())
		case en.Words == nil || en.Words(sample) == "":
			return fmt.Errorf("%s has no words", v.Name())
		}
		seen++
	}
	if seen != len(t.entries) {
		return fmt.Errorf("the table has %d entries, the enum %d values besides its zero one", len(t.entries), seen)
	}
	return nil
}
