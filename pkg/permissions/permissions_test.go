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
