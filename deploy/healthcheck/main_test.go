package main

import (
	"net/http"
	"net/http/httptest"
	"sync/atomic"
	"testing"
	"time"
)

func TestCheck(t *testing.T) {
	var ready atomic.Bool
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/slow" {
			time.Sleep(time.Second)
		}
		if !ready.Load() {
			w.WriteHeader(http.StatusServiceUnavailable)
		}
	}))
	defer srv.Close()
	if err := check(srv.URL+"/readyz", time.Second); err == nil {
		t.Error("a 503 passed")
	}
	ready.Store(true)
	if err := check(srv.URL+"/readyz", time.Second); err != nil {
		t.Errorf("a 200 failed: %v", err)
	}
	if err := check(srv.URL+"/slow", 100*time.Millisecond); err == nil {
		t.Error("a hanging server passed")
	}
	if err := check("http://127.0.0.1:1/readyz", time.Second); err == nil {
		t.Error("nothing listening passed")
	}
}
