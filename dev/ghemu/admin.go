package ghemu

import (
	"encoding/json"
	"net/http"
	"time"
)

// adminRoutes are the emulator's own controls under /_emu/, for processes
// that run it as a binary: seeding, counters, faults.
func (e *Emulator) adminRoutes() {
	e.mux.HandleFunc("POST /_emu/seed", func(w http.ResponseWriter, r *http.Request) {
		var s SeedData
		if err := json.NewDecoder(r.Body).Decode(&s); err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		if err := e.Seed(s); err != nil {
			http.Error(w, err.Error(), http.StatusUnprocessableEntity)
			return
		}
		w.WriteHeader(http.StatusNoContent)
	})
	e.mux.HandleFunc("GET /_emu/counts", func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, http.StatusOK, e.Counts())
	})
	e.mux.HandleFunc("POST /_emu/counts/reset", func(w http.ResponseWriter, r *http.Request) {
		e.ResetCounts()
		w.WriteHeader(http.StatusNoContent)
	})
	e.mux.HandleFunc("PUT /_emu/faults", func(w http.ResponseWriter, r *http.Request) {
		var f struct {
			LatencyMS        int64 `json:"latency_ms"`
			ServerErrors     int   `json:"server_errors"`
			SecondaryLimit   int   `json:"secondary_limit"`
			RetryAfterS      int64 `json:"retry_after_s"`
			ClockOffsetS     int64 `json:"clock_offset_s"`
			ReplicationLagMS int64 `json:"replication_lag_ms"`
		}
		if err := json.NewDecoder(r.Body).Decode(&f); err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		e.SetFaults(Faults{
			Latency: time.Duration(f.LatencyMS) * time.Millisecond, ServerErrors: f.ServerErrors, SecondaryLimit: f.SecondaryLimit,
			RetryAfter: time.Duration(f.RetryAfterS) * time.Second, ClockOffset: time.Duration(f.ClockOffsetS) * time.Second,
			ReplicationLag: time.Duration(f.ReplicationLagMS) * time.Millisecond,
		})
		w.WriteHeader(http.StatusNoContent)
	})
	e.mux.HandleFunc("GET /_emu/tokens/{installation_id}", func(w http.ResponseWriter, r *http.Request) {
		var id int64
		json.Unmarshal([]byte(r.PathValue("installation_id")), &id)
		writeJSON(w, http.StatusOK, map[string]int{"live": e.LiveTokens(id)})
	})
}
