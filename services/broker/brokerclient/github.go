package brokerclient

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/google/go-github/v60/github"
	"google.golang.org/grpc/status"
)

// The kinds of GitHub.com failure. A *GitHubError is errors.Is its kind.
var (
	// ErrUnauthorized: GitHub.com does not accept the App JWT or the token
	// (401).
	ErrUnauthorized = errors.New("GitHub.com rejected the credentials")
	// ErrForbidden: GitHub.com refused the call for another reason than a
	// rate limit (403).
	ErrForbidden = errors.New("GitHub.com refused the call")
	// ErrNotFound: GitHub.com knows no such resource, or hides it (404).
	ErrNotFound = errors.New("GitHub.com found nothing there")
	// ErrRejected: GitHub.com understood the call and will not do it,
	// such as a scope beyond the installation (422).
	ErrRejected = errors.New("GitHub.com rejected the request")
	// ErrRateLimited: a primary or secondary rate limit; RetryAt says when
	// GitHub.com takes calls again.
	ErrRateLimited = errors.New("GitHub.com rate limit")
	// ErrUnavailable: GitHub.com failed (5xx).
	ErrUnavailable = errors.New("GitHub.com is unavailable")
	// ErrUnexpected: GitHub.com answered with a status the caller has no
	// meaning for.
	ErrUnexpected = errors.New("GitHub.com answered unexpectedly")
	// ErrUnreachable: no answer from GitHub.com.
	ErrUnreachable = errors.New("GitHub.com is unreachable")
)

// secondaryWait is how long a secondary rate limit lasts when GitHub.com
// does not say (its documentation: wait at least a minute).
const secondaryWait = time.Minute

// GitHubError is a failed call to GitHub.com, classified once for every
// caller: the broker's own calls with App JWTs and internal services'
// calls with the tokens it issues.
type GitHubError struct {
	// Kind is one of the Err* kinds above.
	Kind error
	// StatusCode is GitHub.com's HTTP status; 0 when it did not answer.
	StatusCode int
	// Message is GitHub.com's message, which callers may be shown: it
	// quotes no credential.
	Message string
	// RetryAt is when GitHub.com takes calls again (ErrRateLimited).
	RetryAt time.Time
	// Secondary is true for a secondary rate limit.
	Secondary bool
	// ClockSkew is true when GitHub.com refused a JWT for its issued-at or
	// expiry time: the clocks differ. Date is then GitHub.com's time.
	ClockSkew bool
	// Date is GitHub.com's clock when it answered (its Date header).
	Date time.Time
	// Err is go-github's error or the transport's.
	Err error
}

func (e *GitHubError) Error() string {
	if e.StatusCode == 0 {
		return e.Kind.Error() + ": " + e.Err.Error()
	}
	return fmt.Sprintf("%v (HTTP %d): %s", e.Kind, e.StatusCode, e.Message)
}

// Is makes errors.Is(err, ErrNotFound) and the like work.
func (e *GitHubError) Is(target error) bool { return target == e.Kind }

func (e *GitHubError) Unwrap() error { return e.Err }

// Refused reports whether GitHub.com answered and refused the call itself
// (its credentials, scope or target): another call may well succeed, so
// it says nothing of GitHub.com's health.
func (e *GitHubError) Refused() bool {
	switch e.Kind {
	case ErrUnauthorized, ErrForbidden, ErrNotFound, ErrRejected, ErrUnexpected:
		return true
	}
	return false
}

// Classify says what a failed go-github call means. It returns nil for
// nil; the caller's own cancellation or deadline unchanged; the broker's
// refusal of a token (a call through Transport) as the broker's gRPC
// status error; and anything else as a *GitHubError.
func Classify(err error) error {
	if err == nil || errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
		return err
	}
	var ge *GitHubError
	if errors.As(err, &ge) {
		return err
	}
	if st := brokerStatus(err); st != nil {
		return st
	}
	var rl *github.RateLimitError
	var ab *github.AbuseRateLimitError
	var er *github.ErrorResponse
	switch {
	case errors.As(err, &rl):
		e := answered(ErrRateLimited, rl.Response, rl.Message, err)
		e.RetryAt = rl.Rate.Reset.Time
		return e
	case errors.As(err, &ab):
		e := answered(ErrRateLimited, ab.Response, ab.Message, err)
		e.Secondary, e.RetryAt = true, time.Now().Add(secondaryWait)
		if ab.RetryAfter != nil {
			e.RetryAt = time.Now().Add(*ab.RetryAfter)
		}
		return e
	case errors.As(err, &er):
		return ofResponse(er, err)
	}
	return &GitHubError{Kind: ErrUnreachable, Err: err}
}

func ofResponse(er *github.ErrorResponse, err error) *GitHubError {
	code := 0
	if er.Response != nil {
		code = er.Response.StatusCode
	}
	switch {
	case code == http.StatusUnauthorized:
		e := answered(ErrUnauthorized, er.Response, er.Message, err)
		e.ClockSkew = strings.Contains(er.Message, "'Issued at'") || strings.Contains(er.Message, "'Expiration time'")
		return e
	case code == http.StatusForbidden:
		return answered(ErrForbidden, er.Response, er.Message, err)
	case code == http.StatusNotFound:
		return answered(ErrNotFound, er.Response, er.Message, err)
	case code == http.StatusUnprocessableEntity:
		return answered(ErrRejected, er.Response, er.Message, err)
	case code == http.StatusTooManyRequests:
		e := answered(ErrRateLimited, er.Response, er.Message, err)
		e.Secondary, e.RetryAt = true, time.Now().Add(retryAfter(er.Response, secondaryWait))
		return e
	case code >= 500:
		return answered(ErrUnavailable, er.Response, er.Message, err)
	}
	return answered(ErrUnexpected, er.Response, er.Message, err)
}

func answered(kind error, resp *http.Response, msg string, err error) *GitHubError {
	e := &GitHubError{Kind: kind, Message: msg, Err: err}
	if resp != nil {
		e.StatusCode = resp.StatusCode
		e.Date, _ = http.ParseTime(resp.Header.Get("Date"))
	}
	return e
}

// retryAfter reads a Retry-After header in seconds, else def.
func retryAfter(resp *http.Response, def time.Duration) time.Duration {
	if resp == nil {
		return def
	}
	if s, err := strconv.Atoi(resp.Header.Get("Retry-After")); err == nil && s >= 0 {
		return time.Duration(s) * time.Second
	}
	return def
}

// brokerStatus finds the broker's gRPC status inside a failed call
// through Transport (net/http wraps it), or nil.
func brokerStatus(err error) error {
	var st interface {
		error
		GRPCStatus() *status.Status
	}
	if errors.As(err, &st) && st.GRPCStatus() != nil {
		return st
	}
	return nil
}
