package broker

import (
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
)

// Audit events leave the request path: a call puts its event in a bounded
// buffer and returns; one goroutine renders and writes them in batches,
// woken by a timer, by a batch's worth queueing up, and by Flush (at
// graceful stop). A full buffer makes callers wait (backpressure): no
// event is dropped. Waking per batch rather than when the buffer is half
// full keeps the writing alongside the serving, on a core the callers
// leave idle, instead of in long runs that hold one up.
const (
	auditBuffer = 4096
	auditBatch  = 64
	auditEvery  = 50 * time.Millisecond
)

// auditEvent is one audit line. An issuance is kept compact (the grant's
// fields are rendered by the writer); other events carry their fields.
type auditEvent struct {
	log *zap.Logger
	// call names the call (request id, method), first in the line.
	call   []zap.Field
	level  zapcore.Level
	msg    string
	fields []zap.Field
	// issuance
	g            *grant
	expires      int64
	caller, conn string
	installation int64
	cache        string
	// user token issuance (caller and conn too)
	userToken *userToken
	user      string
}

type auditWriter struct {
	ch      chan auditEvent
	kick    chan struct{}
	flushes chan chan struct{}
	events  prometheus.Counter
	waits   prometheus.Counter
	buf     []zap.Field
	// The last grant rendered, at which expiry, and its rendered
	// fingerprint and expiry: hits on one scope render them once.
	lastG                *grant
	lastExp              int64
	lastSHA, lastExpires string
	// The same for the last user token rendered.
	lastU                  *userToken
	lastUSHA, lastUExpires string
}

func newAuditWriter(m *metrics) *auditWriter {
	w := &auditWriter{ch: make(chan auditEvent, auditBuffer), kick: make(chan struct{}, 1), flushes: make(chan chan struct{}),
		events: m.auditEvents, waits: m.auditWaits}
	go w.run()
	return w
}

// emit queues ev, waiting while the buffer is full.
func (w *auditWriter) emit(ev auditEvent) {
	select {
	case w.ch <- ev:
	default:
		w.waits.Inc()
		w.wake()
		w.ch <- ev
	}
	if len(w.ch) >= auditBatch {
		w.wake()
	}
}

func (w *auditWriter) wake() {
	select {
	case w.kick <- struct{}{}:
	default:
	}
}

// flush returns once every event queued before it is written and synced.
func (w *auditWriter) flush() {
	done := make(chan struct{})
	w.flushes <- done
	<-done
}

func (w *auditWriter) run() {
	t := time.NewTicker(auditEvery)
	defer t.Stop()
	for {
		select {
		case <-t.C:
			w.drain()
		case <-w.kick:
			w.drain()
		case done := <-w.flushes:
			w.drain()
			close(done)
		}
	}
}

// drain writes what is queued, then syncs the output once. Events name
// either Options.Audit or the server's logger (the one request loggers
// derive from), so they share an output: syncing the last logger that
// wrote syncs them all, where syncing each would cost a system call per
// event.
func (w *auditWriter) drain() {
	var last *zap.Logger
	for {
		select {
		case ev := <-w.ch:
			if w.write(ev) {
				last = ev.log
			}
		default:
			if last != nil {
				_ = last.Sync()
			}
			return
		}
	}
}

// render returns the grant's fingerprint and expiry as the audit writes
// them, from the last call's when they are the same.
func (w *auditWriter) render(g *grant, expires int64) (sha, exp string) {
	if g != w.lastG || expires != w.lastExp {
		w.lastG, w.lastExp = g, expires
		w.lastSHA, w.lastExpires = g.sha256.String(), time.Unix(0, expires).UTC().Format(time.RFC3339)
	}
	return w.lastSHA, w.lastExpires
}

// renderUser returns a user token's fingerprint and expiry as the audit
// writes them, from the last call's when it is the same token (a
// userToken is never changed: a refresh makes a new one).
func (w *auditWriter) renderUser(t *userToken) (sha, exp string) {
	if t != w.lastU {
		w.lastU = t
		w.lastUSHA, w.lastUExpires = fingerprintOf(t.token).String(), t.expires.UTC().Format(time.RFC3339)
	}
	return w.lastUSHA, w.lastUExpires
}

// write writes ev and reports whether its logger took it.
func (w *auditWriter) write(ev auditEvent) bool {
	fields := append(w.buf[:0], ev.call...)
	if ev.g != nil {
		sha, exp := w.render(ev.g, ev.expires)
		fields = ev.g.auditFields(append(fields, auditField, zap.String("caller", ev.caller), zap.String("connection_id", ev.conn),
			zap.Int64("installation_id", ev.installation), zap.String("outcome", "issued"), zap.String("cache", ev.cache)), sha, exp)
	} else if t := ev.userToken; t != nil {
		sha, exp := w.renderUser(t)
		fields = append(fields, auditField, zap.String("caller", ev.caller), zap.String("connection_id", ev.conn), zap.String("user", ev.user),
			zap.String("github_login", t.login), zap.String("token_sha256", sha), zap.String("expires", exp))
		// A downscoped token names its scope.
		fields = append(fields, ev.fields...)
	} else {
		fields = append(fields, ev.fields...)
	}
	w.buf = fields
	ce := ev.log.Check(ev.level, ev.msg)
	if ce != nil {
		ce.Write(fields...)
	}
	w.events.Inc()
	return ce != nil
}
