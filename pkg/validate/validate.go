// Package validate holds the input checks of what no request message
// carries (configuration, a signed-in person's login, headers) and those
// no proto rule can say (a login by its account's kind): hostnames, GitHub
// logins, versions, request ids, and page sizes. A request's own fields
// are checked by the rules in its .proto (pkg/server's interceptor); where
// both check the same thing, pkg/server's tests hold them the same. Each
// function returns an error whose text is safe to show the caller.
package validate

import (
	"errors"
	"fmt"
	"regexp"
	"strings"
)

// Hostname checks RFC 1123 host names: dot-separated labels of letters,
// digits and hyphens, 1 to 63 characters each, not starting or ending with a
// hyphen, at most 253 characters in all.
func Hostname(s string) error {
	if s == "" {
		return errors.New("must not be empty")
	}
	if len(s) > 253 {
		return errors.New("must be at most 253 characters")
	}
	for _, label := range strings.Split(s, ".") {
		if label == "" {
			return errors.New("must not have empty labels")
		}
		if len(label) > 63 {
			return errors.New("labels must be at most 63 characters")
		}
		if label[0] == '-' || label[len(label)-1] == '-' {
			return errors.New("labels must not start or end with a hyphen")
		}
		for _, r := range label {
			if !isAlnum(r) && r != '-' {
				return fmt.Errorf("invalid character %q", r)
			}
		}
	}
	return nil
}

// Login checks GitHub.com user and organization logins: 1 to 39 letters,
// digits or single hyphens, not starting or ending with a hyphen.
func Login(s string) error {
	if s == "" {
		return errors.New("must not be empty")
	}
	if len(s) > 39 {
		return errors.New("must be at most 39 characters")
	}
	if s[0] == '-' || s[len(s)-1] == '-' {
		return errors.New("must not start or end with a hyphen")
	}
	if strings.Contains(s, "--") {
		return errors.New("must not contain consecutive hyphens")
	}
	for _, r := range s {
		if !isAlnum(r) && r != '-' {
			return fmt.Errorf("invalid character %q", r)
		}
	}
	return nil
}

// ServerLogin checks a server user's login, as every service takes it: 1
// to 100 ASCII letters, digits, "_", "." or "-", starting with a letter
// or digit. Checked byte by byte: it is on every user-token request,
// where a regular expression costs several times as much.
func ServerLogin(s string) error {
	if s == "" || len(s) > 100 {
		return errors.New("must be a server login of 1 to 100 characters")
	}
	for i := 0; i < len(s); i++ {
		switch c := s[i]; {
		case 'a' <= c && c <= 'z', 'A' <= c && c <= 'Z', '0' <= c && c <= '9':
		case i > 0 && (c == '_' || c == '.' || c == '-'):
		default:
			return errors.New("must be a server login: letters, digits, _ . -, starting with a letter or digit")
		}
	}
	return nil
}

var enterpriseSlug = regexp.MustCompile(`^[a-z0-9](?:[a-z0-9-]{0,58}[a-z0-9])?$`)

// EnterpriseSlug checks GitHub.com enterprise slugs: lower-case letters,
// digits and hyphens, at most 60 characters.
func EnterpriseSlug(s string) error {
	if !enterpriseSlug.MatchString(s) {
		return errors.New("must be 1 to 60 lower-case letters, digits or hyphens, not starting or ending with a hyphen")
	}
	return nil
}

var serverVersion = regexp.MustCompile(`^[0-9]{1,4}\.[0-9]{1,4}(\.[0-9]{1,4})?(-[0-9A-Za-z.]{1,32})?$`)

// ServerVersion checks versions such as "3.14", "3.14.2" or "3.15.0-rc.1".
func ServerVersion(s string) error {
	if !serverVersion.MatchString(s) {
		return errors.New(`must look like "3.14.2" (major.minor[.patch][-pre])`)
	}
	return nil
}

// RequestIDPattern is a request id's: an x-request-id header's and a
// request's idempotency key (request_id), whose rule is
// ghconnect.rules.v1.request_id in the protos (its test holds the two the
// same).
const RequestIDPattern = `^[A-Za-z0-9._-]{1,64}$`

var requestID = regexp.MustCompile(RequestIDPattern)

// RequestID checks a request id: 1 to 64 of [A-Za-z0-9._-].
func RequestID(s string) error {
	if !requestID.MatchString(s) {
		return errors.New("must be 1 to 64 characters of A-Z, a-z, 0-9, ., _ or -")
	}
	return nil
}

// Page sizes of the list and search calls: 0 asks for DefaultPageSize, and
// a size above MaxPageSize gets MaxPageSize (AIP-158).
const (
	DefaultPageSize = 20
	MaxPageSize     = 100
)

// PageSize is the number of items a request's page_size asks for.
func PageSize(n int32) (int, error) {
	switch {
	case n < 0:
		return 0, errors.New("must not be negative")
	case n == 0:
		return DefaultPageSize, nil
	case n > MaxPageSize:
		return MaxPageSize, nil
	}
	return int(n), nil
}

func isAlnum(r rune) bool {
	return (r >= 'a' && r <= 'z') || (r >= 'A' && r <= 'Z') || (r >= '0' && r <= '9')
}

// RepoName checks a repository name (without its owner). It is on every
// token request's path, so it is a loop rather than a regular expression
// (a fifth of the cost).
func RepoName(s string) error {
	bad := len(s) == 0 || len(s) > 100 || s == "." || s == ".."
	for i := 0; i < len(s) && !bad; i++ {
		c := s[i]
		bad = !isAlnum(rune(c)) && c != '.' && c != '_' && c != '-'
	}
	if bad {
		return errors.New("must be 1 to 100 letters, digits, . _ or -")
	}
	return nil
}
