package ghemu

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"sort"
	"strings"
	"sync"

	"github.com/getkin/kin-openapi/openapi3"
	"github.com/getkin/kin-openapi/openapi3filter"
	"github.com/getkin/kin-openapi/routers"
	"github.com/getkin/kin-openapi/routers/gorillamux"
)

func init() {
	// GitHub's plain-text media type of GET /repos/{owner}/{repo}/commits/{ref}
	// (the SHA alone, go-github's GetCommitSHA1) has no decoder in
	// kin-openapi: the body is checked as the text it is.
	openapi3filter.RegisterBodyDecoder("application/vnd.github.sha", openapi3filter.PlainBodyDecoder)
}

// Contract checks requests and responses against GitHub's OpenAPI
// description: api.github.com's, and for what only GitHub Enterprise Cloud
// has (such as GET /enterprises/{enterprise}/installation), ghec's.
type Contract struct {
	routers []routers.Router
}

// SpecDir is where openapi/fetch.sh puts the description files.
func SpecDir() string {
	_, file, _, _ := runtime.Caller(0)
	return filepath.Join(filepath.Dir(file), "openapi", ".spec")
}

// FetchSpec runs openapi/fetch.sh if the description files are missing.
func FetchSpec() error {
	dir := SpecDir()
	if _, err := os.Stat(filepath.Join(dir, "ghec.json")); err == nil {
		return nil
	}
	cmd := exec.Command("bash", filepath.Join(filepath.Dir(dir), "fetch.sh")) //nolint:gosec // G204: our own script, next to the spec directory
	out, err := cmd.CombinedOutput()
	if err != nil {
		return fmt.Errorf("ghemu: fetching the OpenAPI description: %v\n%s", err, out)
	}
	return nil
}

var (
	sharedOnce     sync.Once
	sharedContract *Contract
	sharedErr      error
)

// SharedContract loads the description once per process (about 3 s).
func SharedContract() (*Contract, error) {
	sharedOnce.Do(func() {
		if sharedErr = FetchSpec(); sharedErr == nil {
			sharedContract, sharedErr = LoadContract(SpecDir())
		}
	})
	return sharedContract, sharedErr
}

// LoadContract loads and patches the description files in dir and keeps of
// them only the operations the emulator serves: Check is never asked about
// any other, and the whole description would be over 150 MB of heap in
// every test process that starts an emulator, marked by each of its garbage
// collections. Each served route must be in one of the files.
func LoadContract(dir string) (*Contract, error) {
	served := map[string]bool{}
	for _, route := range New(Options{}).apiRoutes {
		served[route] = true
	}
	c := &Contract{}
	found := map[string]bool{}
	for _, name := range []string{"api.github.com.json", "ghec.json"} {
		raw, err := os.ReadFile(filepath.Join(dir, name))
		if err != nil {
			return nil, fmt.Errorf("ghemu: reading %s: %w", name, err)
		}
		// Only the served operations and what they refer to reach the
		// OpenAPI loader: resolving the whole description costs several
		// seconds of CPU in every process that starts an emulator.
		if raw, err = servedPart(raw, served); err != nil {
			return nil, fmt.Errorf("ghemu: trimming %s: %w", name, err)
		}
		doc, err := openapi3.NewLoader().LoadFromData(raw)
		if err != nil {
			return nil, fmt.Errorf("ghemu: loading %s: %w", name, err)
		}
		if err := patch(doc); err != nil {
			return nil, fmt.Errorf("ghemu: patching %s: %w", name, err)
		}
		keepServed(doc, served, found)
		// doc.Validate is skipped on purpose: the description has known
		// errors that do not affect request and response checks.
		r, err := gorillamux.NewRouter(doc)
		if err != nil {
			return nil, fmt.Errorf("ghemu: routing %s: %w", name, err)
		}
		c.routers = append(c.routers, r)
	}
	var missing []string
	for route := range served {
		if !found[route] {
			missing = append(missing, route)
		}
	}
	if len(missing) > 0 {
		sort.Strings(missing)
		return nil, fmt.Errorf("ghemu: emulator routes not in GitHub's OpenAPI description: %s", strings.Join(missing, ", "))
	}
	return c, nil
}

// servedPart is the description raw with only the operations in served
// ("METHOD /path") and the components they refer to, directly or through
// other components (and those patch needs). Operations keep their
// path-level fields.
func servedPart(raw []byte, served map[string]bool) ([]byte, error) {
	var doc map[string]any
	if err := json.Unmarshal(raw, &doc); err != nil {
		return nil, err
	}
	paths, _ := doc["paths"].(map[string]any)
	kept := map[string]any{}
	var roots []any
	for path, v := range paths {
		item, _ := v.(map[string]any)
		out := map[string]any{}
		keep := false
		for key, op := range item {
			if httpMethods[key] {
				if served[strings.ToUpper(key)+" "+path] {
					out[key], keep = op, true
				}
				continue
			}
			out[key] = op
		}
		if keep {
			kept[path] = out
			roots = append(roots, out)
		}
	}
	doc["paths"] = kept
	components, _ := doc["components"].(map[string]any)
	reached := map[string]bool{}
	queue := []string{"#/components/schemas/installation"} // patch uses it
	for _, r := range roots {
		queue = appendRefs(queue, r)
	}
	for len(queue) > 0 {
		ref := queue[len(queue)-1]
		queue = queue[:len(queue)-1]
		if reached[ref] {
			continue
		}
		reached[ref] = true
		kind, name, ok := strings.Cut(strings.TrimPrefix(ref, "#/components/"), "/")
		if !ok {
			continue
		}
		if group, ok := components[kind].(map[string]any); ok {
			queue = appendRefs(queue, group[name])
		}
	}
	trimmed := map[string]any{}
	for kind, v := range components {
		group, _ := v.(map[string]any)
		out := map[string]any{}
		for name, c := range group {
			if reached["#/components/"+kind+"/"+name] {
				out[name] = c
			}
		}
		trimmed[kind] = out
	}
	doc["components"] = trimmed
	delete(doc, "webhooks")
	return json.Marshal(doc)
}

var httpMethods = map[string]bool{"get": true, "put": true, "post": true, "delete": true, "options": true, "head": true, "patch": true, "trace": true}

// appendRefs appends every local "$ref" under v to refs.
func appendRefs(refs []string, v any) []string {
	switch v := v.(type) {
	case map[string]any:
		for k, c := range v {
			if r, ok := c.(string); ok && k == "$ref" && strings.HasPrefix(r, "#/components/") {
				refs = append(refs, r)
			} else {
				refs = appendRefs(refs, c)
			}
		}
	case []any:
		for _, c := range v {
			refs = appendRefs(refs, c)
		}
	}
	return refs
}

// keepServed drops from doc every operation not in served ("METHOD /path",
// the path as the description spells it) and what only they referred to,
// and records in found the ones it kept. The schemas an operation uses are
// resolved into it on loading, so the components are no longer needed.
func keepServed(doc *openapi3.T, served, found map[string]bool) {
	for _, path := range doc.Paths.Keys() {
		item := doc.Paths.Value(path)
		for method := range item.Operations() {
			route := method + " " + path
			if served[route] {
				found[route] = true
			} else {
				item.SetOperation(method, nil)
			}
		}
		if len(item.Operations()) == 0 {
			doc.Paths.Delete(path)
		}
	}
	doc.Components = &openapi3.Components{}
	doc.Extensions, doc.Tags, doc.Webhooks = nil, nil, nil
}

// patch fixes, in this one place, the gaps of the description that would
// make a faithful exchange fail.
func patch(doc *openapi3.T) error {
	// octokit's generator overrides the 200 schema of GET /app/installations
	// with an inlined copy that drifts from the real installation object;
	// GitHub returns an array of installations.
	item := doc.Paths.Find("/app/installations")
	inst := doc.Components.Schemas["installation"]
	if item == nil || item.Get == nil || inst == nil {
		return errors.New("GET /app/installations or the installation schema is missing")
	}
	resp := item.Get.Responses.Status(http.StatusOK)
	if resp == nil || resp.Value == nil || resp.Value.Content["application/json"] == nil {
		return errors.New("GET /app/installations has no JSON 200 response")
	}
	resp.Value.Content["application/json"].Schema = &openapi3.SchemaRef{Value: &openapi3.Schema{
		Type:  &openapi3.Types{"array"},
		Items: &openapi3.SchemaRef{Ref: "#/components/schemas/installation", Value: inst.Value},
	}}
	return nil
}

// Check validates one exchange: the request as the client sent it and the
// response the emulator produced.
func (c *Contract) Check(r *http.Request, reqBody []byte, status int, header http.Header, respBody []byte) error {
	// The description's server is https://api.github.com.
	u := *r.URL
	u.Scheme, u.Host = "https", "api.github.com"
	req := r.Clone(context.Background())
	req.URL = &u
	req.Host = "api.github.com"
	req.RequestURI = ""
	req.Body = io.NopCloser(bytes.NewReader(reqBody))
	var route *routers.Route
	var params map[string]string
	for _, router := range c.routers {
		var err error
		if route, params, err = router.FindRoute(req); err == nil {
			break
		}
	}
	if route == nil {
		return fmt.Errorf("contract: %s %s is not in GitHub's OpenAPI description", r.Method, r.URL.Path)
	}
	opts := &openapi3filter.Options{
		// The description declares no security schemes; the emulator checks
		// JWTs and tokens itself.
		AuthenticationFunc: openapi3filter.NoopAuthenticationFunc,
		MultiError:         true,
	}
	in := &openapi3filter.RequestValidationInput{Request: req, PathParams: params, Route: route, Options: opts}
	if err := openapi3filter.ValidateRequest(context.Background(), in); err != nil {
		return fmt.Errorf("contract: request %s %s: %w", r.Method, r.URL.Path, err)
	}
	out := &openapi3filter.ResponseValidationInput{RequestValidationInput: in, Status: status, Header: header, Options: opts}
	out.SetBodyBytes(respBody)
	if err := openapi3filter.ValidateResponse(context.Background(), out); err != nil {
		return fmt.Errorf("contract: response %d to %s %s: %w", status, r.Method, r.URL.Path, err)
	}
	return nil
}
