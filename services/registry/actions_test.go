package registry

import (
	"go/ast"
	"go/parser"
	"go/token"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"

	registryv1 "github.com/ghconnect/ghconnect/gen/ghconnect/registry/v1"
	"github.com/google/go-cmp/cmp"
)

// Every ConnectionAction has its stored name and words, and the table
// holds nothing else.
func TestEveryActionHasNameAndWords(t *testing.T) {
	if err := history.Check(registryv1.ConnectionAction(0).Descriptor().Values(), &registryv1.ConnectionEvent{}); err != nil {
		t.Fatal(err)
	}
}

// Every move the code can make (each function returning a Move, found in
// the package's source) names an action of the enum, stored under a name
// that reads back as that action; so does each disconnect step.
func TestEveryMoveIsAnAction(t *testing.T) {
	moves := map[string]Move{
		"appCreated":               appCreated(nil, nil),
		"markConnected":            markConnected(0),
		"connectExistingApp":       connectExistingApp(nil, nil, 0),
		"withAccountID":            withAccountID(markConnected(0), 1),
		"rotateAppKey":             rotateAppKey(1),
		"keyVersionAdopted":        keyVersionAdopted(nil),
		"keyVersionPending":        keyVersionPending(1, ""),
		"keyVersionsRetired":       keyVersionsRetired(nil),
		"keyVersionPendingCleared": keyVersionPendingCleared(),
		"followedKey":              followedKey(actionKeyVersionAdopted, nil),
		"beginDisconnect":          beginDisconnect(),
		"completeDisconnect":       completeDisconnect(),
		"appPermissionsRefreshed":  appPermissionsRefreshed(nil),
		"appGone":                  appGone(),
	}
	funcs, steps := moveSources(t)
	for _, step := range steps {
		moves["disconnectStep("+step+")"] = disconnectStep(step)
	}
	var tested []string
	for name := range moves {
		fn, _, _ := strings.Cut(name, "(")
		tested = append(tested, fn)
	}
	slices.Sort(tested)
	tested = slices.Compact(tested)
	if diff := cmp.Diff(funcs, tested); diff != "" {
		t.Errorf("the functions returning a Move and the ones this test makes differ (-source +test):\n%s", diff)
	}
	for name, m := range moves {
		if m.action == registryv1.ConnectionAction_CONNECTION_ACTION_UNSPECIFIED {
			t.Errorf("%s: no action", name)
			continue
		}
		if stored := m.Action(); stored == "" || history.Of(stored) != m.action {
			t.Errorf("%s: %s is stored as %q, which reads back as %s", name, m.action, stored, history.Of(stored))
		}
	}
	if disconnectStep("no_such_step").check(&registryv1.Connection{State: stateDisconnecting}) == nil {
		t.Error("a step without an action is a move")
	}
}

// moveSources reads the package's (non-test) source: the names of the
// functions that return a Move, sorted, and the values of the step*
// constants (the disconnect's steps).
func moveSources(t *testing.T) (funcs, steps []string) {
	t.Helper()
	files, err := filepath.Glob("*.go")
	if err != nil {
		t.Fatal(err)
	}
	fset := token.NewFileSet()
	for _, path := range files {
		if strings.HasSuffix(path, "_test.go") {
			continue
		}
		f, err := parser.ParseFile(fset, path, nil, 0)
		if err != nil {
			t.Fatal(err)
		}
		for _, decl := range f.Decls {
			switch d := decl.(type) {
			case *ast.FuncDecl:
				if d.Recv == nil && d.Type.Results != nil && len(d.Type.Results.List) == 1 {
					if id, ok := d.Type.Results.List[0].Type.(*ast.Ident); ok && id.Name == "Move" {
						funcs = append(funcs, d.Name.Name)
					}
				}
			case *ast.GenDecl:
				if d.Tok != token.CONST {
					continue
				}
				for _, spec := range d.Specs {
					vs := spec.(*ast.ValueSpec)
					for i, n := range vs.Names {
						if strings.HasPrefix(n.Name, "step") && i < len(vs.Values) {
							if lit, ok := vs.Values[i].(*ast.BasicLit); ok && lit.Kind == token.STRING {
								v, _ := strconv.Unquote(lit.Value)
								steps = append(steps, v)
							}
						}
					}
				}
			}
		}
	}
	slices.Sort(funcs)
	if len(steps) == 0 {
		t.Fatal("no disconnect steps found in the source")
	}
	return funcs, steps
}
