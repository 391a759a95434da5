package permissions

import (
	"testing"

	"github.com/google/go-cmp/cmp"
)

func TestMissing(t *testing.T) {
	have := map[string]string{"contents": "write", "metadata": "read", "issues": "admin"}
	tests := []struct {
		want, missing map[string]string
	}{
		{map[string]string{"contents": "read"}, map[string]string{}},
		{map[string]string{"contents": "write", "issues": "write"}, map[string]string{}},
		{map[string]string{"contents": "admin"}, map[string]string{"contents": "admin"}},
		{map[string]string{"actions": "read", "metadata": "read"}, map[string]string{"actions": "read"}},
		{nil, map[string]string{}},
	}
	for _, tt := range tests {
		if diff := cmp.Diff(tt.missing, Missing(have, tt.want)); diff != "" {
			t.Errorf("Missing(%v) (-want +got):\n%s", tt.want, diff)
		}
	}
	if got := String(map[string]string{"b": "write", "a": "read"}); got != "a:read, b:write" {
		t.Errorf("String = %q", got)
	}
}

func TestValidate(t *testing.T) {
	if err := Validate(map[string]string{"contents": "read", "pull_requests": "write"}); err != nil {
		t.Fatal(err)
	}
	for _, bad := range []map[string]string{{"contents": "destroy"}, {"Contents": "read"}, {"": "read"}, {"a-b": "read"}} {
		if Validate(bad) == nil {
			t.Errorf("accepted %v", bad)
		}
	}
}

// Covers agrees with Missing on every pair, odd names and levels included,
// and allocates nothing (the broker's cache hit calls it).
func TestCoversAgreesWithMissing(t *testing.T) {
	sets := []map[string]string{
		nil, {}, {"contents": "read"}, {"contents": "write", "issues": "admin"}, {"pull_requests": "read"},
		{"Contents": "read"}, {"_x": "read"}, {"a": "read"}, {"contents": "none"}, {"contents": ""}, {"": "read"},
		{"contents": "admin"}, {"contents": "write"},
	}
	for _, s := range sets {
		for _, w := range sets {
			if got, want := Covers(s, w), len(Missing(s, w)) == 0; got != want {
				t.Errorf("Covers(%v, %v) = %v, Missing says %v", s, w, got, want)
			}
		}
	}
	have, want := sets[3], map[string]string{"contents": "read", "issues": "write"}
	if n := testing.AllocsPerRun(100, func() { Covers(have, want) }); n != 0 {
		t.Errorf("Covers allocates %v times a call", n)
	}
}

func TestLevelOrder(t *testing.T) {
	if Level("") >= Level("read") || Level("read") >= Level("write") || Level("write") >= Level("admin") {
		t.Errorf("levels out of order: none %d, read %d, write %d, admin %d", Level(""), Level("read"), Level("write"), Level("admin"))
	}
	if Level("none") != 0 || Level("Read") != 0 {
		t.Errorf("an unknown level ranks above none")
	}
}

func TestUnion(t *testing.T) {
	a := map[string]string{"contents": "read", "metadata": "read"}
	b := map[string]string{"contents": "write", "issues": "read"}
	c := map[string]string{"contents": "read", "members": "admin"}
	want := map[string]string{"contents": "write", "metadata": "read", "issues": "read", "members": "admin"}
	if diff := cmp.Diff(want, Union(a, b, c)); diff != "" {
		t.Errorf("Union (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff(want, Union(c, b, a)); diff != "" {
		t.Errorf("Union in another order (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff(map[string]string{"contents": "read", "metadata": "read"}, a); diff != "" {
		t.Errorf("Union changed its argument (-want +got):\n%s", diff)
	}
	if got := Union(); len(got) != 0 || got == nil {
		t.Errorf("Union() = %#v, want an empty set", got)
	}
}
