package vaultdev

import (
	"bytes"
	"context"
	"crypto/subtle"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"strings"
	"time"

	"github.com/hashicorp/vault/sdk/logical"
)

// maxBody bounds request bodies (Vault's default is 32 MiB; keys are far
// smaller).
const maxBody = 4 << 20

// ServeHTTP implements Vault's HTTP conventions for the paths served.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	start := time.Now()
	rec := &statusWriter{ResponseWriter: w, status: http.StatusOK}
	defer func() {
		s.cfg.Logger.Info("request", "method", r.Method, "path", r.URL.Path, "status", rec.status, "duration", time.Since(start))
	}()
	ctx, cancel := context.WithTimeout(r.Context(), 30*time.Second)
	defer cancel()

	path, ok := strings.CutPrefix(r.URL.Path, "/v1/")
	if !ok {
		respondError(rec, http.StatusNotFound, nil)
		return
	}
	if path == "sys/health" {
		s.health(rec)
		return
	}
	if subtle.ConstantTimeCompare([]byte(r.Header.Get("X-Vault-Token")), []byte(s.cfg.RootToken)) != 1 {
		respondError(rec, http.StatusForbidden, logical.ErrPermissionDenied)
		return
	}
	op, ok := operation(r)
	if !ok {
		respondError(rec, http.StatusMethodNotAllowed, errors.New("unsupported operation"))
		return
	}
	data, err := readData(r, op)
	if err != nil {
		respondError(rec, http.StatusBadRequest, err)
		return
	}
	if rest, ok := strings.CutPrefix(path, "sys/mounts"); ok {
		s.sysMounts(ctx, rec, op, strings.TrimPrefix(rest, "/"), data)
		return
	}
	s.logical(ctx, rec, op, path, data)
}

func operation(r *http.Request) (logical.Operation, bool) {
	switch r.Method {
	case http.MethodGet:
		if r.URL.Query().Get("list") == "true" {
			return logical.ListOperation, true
		}
		return logical.ReadOperation, true
	case "LIST":
		return logical.ListOperation, true
	case http.MethodPost, http.MethodPut:
		return logical.UpdateOperation, true
	case http.MethodDelete:
		return logical.DeleteOperation, true
	}
	return "", false
}

// readData decodes a JSON body keeping numbers exact, as Vault does; GET
// takes its data from the query string.
func readData(r *http.Request, op logical.Operation) (map[string]any, error) {
	data := map[string]any{}
	if op == logical.ReadOperation || op == logical.ListOperation {
		for k, v := range r.URL.Query() {
			if k != "list" && len(v) > 0 {
				data[k] = v[0]
			}
		}
		return data, nil
	}
	body, err := io.ReadAll(io.LimitReader(r.Body, maxBody+1))
	if err != nil {
		return nil, err
	}
	if len(body) > maxBody {
		return nil, errors.New("request body too large")
	}
	if len(bytes.TrimSpace(body)) == 0 {
		return data, nil
	}
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.UseNumber()
	if err := dec.Decode(&data); err != nil {
		return nil, errors.New("failed to parse JSON input: " + err.Error())
	}
	return data, nil
}

func (s *Server) health(w http.ResponseWriter) {
	respondJSON(w, http.StatusOK, map[string]any{
		"initialized":                  true,
		"sealed":                       false,
		"standby":                      false,
		"performance_standby":          false,
		"replication_performance_mode": "disabled",
		"replication_dr_mode":          "disabled",
		"server_time_utc":              time.Now().Unix(),
		"version":                      Version,
		"cluster_name":                 "vaultdev",
	})
}

func (s *Server) sysMounts(ctx context.Context, w http.ResponseWriter, op logical.Operation, path string, data map[string]any) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if path == "" {
		if op != logical.ReadOperation {
			respondError(w, http.StatusMethodNotAllowed, errors.New("unsupported operation"))
			return
		}
		out := map[string]any{}
		for p, m := range s.mounts {
			out[p] = map[string]any{"type": m.Type, "description": m.Description, "accessor": m.Accessor, "uuid": m.UUID, "config": map[string]any{}, "options": map[string]any{}, "local": false, "seal_wrap": false}
		}
		respondLogical(w, &logical.Response{Data: out})
		return
	}
	mountPath := strings.Trim(path, "/") + "/"
	switch op {
	case logical.UpdateOperation:
		typ, _ := data["type"].(string)
		if typ != "transit" {
			respondError(w, http.StatusBadRequest, errors.New(`vaultdev serves only the "transit" secrets engine; got type "`+typ+`"`))
			return
		}
		for p := range s.mounts {
			if strings.HasPrefix(p, mountPath) || strings.HasPrefix(mountPath, p) {
				respondError(w, http.StatusBadRequest, errors.New("path is already in use at "+p))
				return
			}
		}
		desc, _ := data["description"].(string)
		if err := s.mount(ctx, mountPath, typ, desc); err != nil {
			respondError(w, http.StatusInternalServerError, err)
			return
		}
		w.WriteHeader(http.StatusNoContent)
	case logical.DeleteOperation:
		m, ok := s.mounts[mountPath]
		if ok {
			if err := logical.ClearView(ctx, m.view); err != nil {
				respondError(w, http.StatusInternalServerError, err)
				return
			}
			m.backend.Cleanup(ctx)
			delete(s.mounts, mountPath)
			if err := s.saveMountTable(ctx); err != nil {
				respondError(w, http.StatusInternalServerError, err)
				return
			}
		}
		w.WriteHeader(http.StatusNoContent)
	default:
		respondError(w, http.StatusMethodNotAllowed, errors.New("unsupported operation"))
	}
}

// route finds the mount serving path, longest prefix first.
func (s *Server) route(path string) (*mount, string) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	var best *mount
	for p, m := range s.mounts {
		if (strings.HasPrefix(path, p) || path+"/" == p) && (best == nil || len(p) > len(best.Path)) {
			best = m
		}
	}
	if best == nil {
		return nil, ""
	}
	return best, strings.TrimPrefix(strings.TrimPrefix(path, strings.TrimSuffix(best.Path, "/")), "/")
}

func (s *Server) logical(ctx context.Context, w http.ResponseWriter, op logical.Operation, path string, data map[string]any) {
	m, rel := s.route(path)
	if m == nil {
		respondError(w, http.StatusNotFound, errors.New("no handler for route \""+path+"\". route entry not found."))
		return
	}
	if op == logical.ListOperation && !strings.HasSuffix(rel, "/") {
		rel += "/"
	}
	req := &logical.Request{
		ID:          randomID(),
		Operation:   op,
		Path:        rel,
		Data:        data,
		Storage:     m.view,
		MountPoint:  m.Path,
		MountType:   m.Type,
		ClientToken: s.cfg.RootToken,
	}
	// Vault turns a write to something that does not exist yet into a
	// create, for the paths that tell the two apart.
	if op == logical.UpdateOperation {
		found, exists, err := m.backend.HandleExistenceCheck(ctx, req)
		if err != nil {
			respondError(w, http.StatusBadRequest, err)
			return
		}
		if found && !exists {
			req.Operation = logical.CreateOperation
		}
	}
	resp, err := m.backend.HandleRequest(ctx, req)
	if code, rerr := logical.RespondErrorCommon(req, resp, err); code != 0 {
		respondError(w, code, rerr)
		return
	}
	respondLogical(w, resp)
}

func respondLogical(w http.ResponseWriter, resp *logical.Response) {
	if resp == nil || (len(resp.Data) == 0 && len(resp.Warnings) == 0 && resp.Auth == nil && resp.WrapInfo == nil) {
		w.WriteHeader(http.StatusNoContent)
		return
	}
	respondJSON(w, http.StatusOK, map[string]any{
		"request_id":     randomID(),
		"lease_id":       "",
		"renewable":      false,
		"lease_duration": 0,
		"data":           resp.Data,
		"wrap_info":      nil,
		"warnings":       nilIfEmpty(resp.Warnings),
		"auth":           nil,
		"mount_type":     "transit",
	})
}

func nilIfEmpty(s []string) any {
	if len(s) == 0 {
		return nil
	}
	return s
}

// respondError writes Vault's error body; a nil err gives an empty list,
// as Vault answers a read of something missing.
func respondError(w http.ResponseWriter, code int, err error) {
	errs := []string{}
	if err != nil {
		errs = append(errs, err.Error())
	}
	respondJSON(w, code, map[string]any{"errors": errs})
}

func respondJSON(w http.ResponseWriter, code int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	json.NewEncoder(w).Encode(v)
}

type statusWriter struct {
	http.ResponseWriter
	status int
}

func (s *statusWriter) WriteHeader(code int) {
	s.status = code
	s.ResponseWriter.WriteHeader(code)
}
