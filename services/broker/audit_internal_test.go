package broker

import (
	"bytes"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/ghconnect/ghconnect/pkg/logging"
	"github.com/ghconnect/ghconnect/pkg/testenv"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
)

// gatedSink is log output that blocks while its gate is closed and counts
// syncs.
type gatedSink struct {
	gate  chan struct{}
	mu    sync.Mutex
	buf   bytes.Buffer
	syncs int
}

func (s *gatedSink) Write(p []byte) (int, error) {
	<-s.gate
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.buf.Write(p)
}

func (s *gatedSink) Sync() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.syncs++
	return nil
}

func (s *gatedSink) lines() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return strings.Count(s.buf.String(), "\n")
}

func newGatedLogger(t *testing.T, open bool) (*zap.Logger, *gatedSink) {
	s := &gatedSink{gate: make(chan struct{})}
	if open {
		close(s.gate)
	}
	l, err := logging.NewWithSink(logging.Options{}, s)
	if err != nil {
		t.Fatal(err)
	}
	return l, s
}

// With the output stuck, callers fill the buffer and then wait; nothing is
// dropped, every event is counted once written, and the output is synced
// once a batch rather than once an event.
func TestAuditBackpressureLosesNothing(t *testing.T) {
	l, sink := newGatedLogger(t, false)
	m := newMetrics(nil)
	w := newAuditWriter(m)
	const n = auditBuffer + 500
	done := make(chan struct{})
	go func() {
		defer close(done)
		for i := range n {
			w.emit(auditEvent{log: l.With(zap.Int("request", i)), level: zapcore.InfoLevel, msg: "token refused", fields: []zap.Field{auditField}})
		}
	}()
	select {
	case <-done:
		t.Fatal("callers never waited for a stuck output")
	case <-time.After(300 * time.Millisecond): // a negative check: the callers stay stuck
	}
	// The callers may still be filling the buffer on a slow machine.
	testenv.Eventually(t, 10*time.Second, "backpressure is counted", func() bool { return testutil.ToFloat64(m.auditWaits) > 0 })
	close(sink.gate)
	<-done
	w.flush()
	if got := sink.lines(); got != n {
		t.Errorf("%d lines written, want %d", got, n)
	}
	if got := testutil.ToFloat64(m.auditEvents); got != n {
		t.Errorf("events metric %v, want %d", got, n)
	}
	if sink.syncs == 0 || sink.syncs > n/auditBatch+10 {
		t.Errorf("%d syncs for %d events", sink.syncs, n)
	}
}

// An event alone, short of a batch, is written by the timer without a
// flush.
func TestAuditTimerWritesALoneEvent(t *testing.T) {
	l, sink := newGatedLogger(t, true)
	w := newAuditWriter(newMetrics(nil))
	w.emit(auditEvent{log: l, level: zapcore.InfoLevel, msg: "token refused", fields: []zap.Field{auditField}})
	testenv.Eventually(t, 5*auditEvery, "the timer writes a lone event", func() bool { return sink.lines() > 0 })
}
