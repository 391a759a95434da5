package main

import (
	"encoding/pem"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"sync/atomic"
	"testing"
	"time"
)

func TestCheck(t *testing.T) {
	var ready atomic.Bool
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/slow" {
			time.Sleep(time.Second) // a slow endpoint: the check's timeout is under test
		}
		if !ready.Load() {
			w.WriteHeader(http.StatusServiceUnavailable)
		}
	}))
	defer srv.Close()
	if err := check(http.DefaultClient, srv.URL+"/readyz", time.Second); err == nil {
		t.Error("a 503 passed")
	}
	ready.Store(true)
	if err := check(http.DefaultClient, srv.URL+"/readyz", time.Second); err != nil {
		t.Errorf("a 200 failed: %v", err)
	}
	if err := check(http.DefaultClient, srv.URL+"/slow", 100*time.Millisecond); err == nil {
		t.Error("a hanging server passed")
	}
	if err := check(http.DefaultClient, "http://127.0.0.1:1/readyz", time.Second); err == nil {
		t.Error("nothing listening passed")
	}
}

func TestCheckCA(t *testing.T) {
	srv := httptest.NewTLSServer(http.HandlerFunc(func(http.ResponseWriter, *http.Request) {}))
	defer srv.Close()
	if err := check(http.DefaultClient, srv.URL, time.Second); err == nil {
		t.Error("an unknown CA passed")
	}
	ca := filepath.Join(t.TempDir(), "ca.pem")
	if err := os.WriteFile(ca, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: srv.Certificate().Raw}), 0o600); err != nil {
		t.Fatal(err)
	}
	client, err := newClient(ca)
	if err != nil {
		t.Fatal(err)
	}
	if err := check(client, srv.URL, time.Second); err != nil {
		t.Errorf("with -ca: %v", err)
	}
	if _, err := newClient(filepath.Join(t.TempDir(), "missing.pem")); err == nil {
		t.Error("a missing CA file passed")
	}
}
