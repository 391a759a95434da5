package ghemu

import (
	"crypto/rand"
	"encoding/json"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/golang-jwt/jwt/v5"
)

// maxJWTLifetime is GitHub's limit on exp - iat for App JWTs.
const maxJWTLifetime = 10 * time.Minute

// iatSkew is how far in the future an iat may be before GitHub calls it
// a clock problem.
const iatSkew = 30 * time.Second

func credentials(r *http.Request) (scheme, value string, ok bool) {
	h := r.Header.Get("Authorization")
	scheme, value, ok = strings.Cut(h, " ")
	if !ok {
		return "", "", false
	}
	return strings.ToLower(scheme), strings.TrimSpace(value), value != ""
}

// verifyJWT authenticates an App by its JWT, with GitHub's messages for
// each way it can be wrong.
func (e *Emulator) verifyJWT(r *http.Request) (*App, int, string) {
	scheme, raw, ok := credentials(r)
	if !ok || scheme != "bearer" {
		if ok && scheme == "token" && strings.HasPrefix(raw, "ghs_") {
			return nil, http.StatusForbidden, "This endpoint requires you to authenticate as a GitHub App (JWT), not as an installation."
		}
		return nil, http.StatusUnauthorized, "A JSON web token could not be decoded"
	}
	if strings.HasPrefix(raw, "ghs_") {
		return nil, http.StatusForbidden, "This endpoint requires you to authenticate as a GitHub App (JWT), not as an installation."
	}
	parts := strings.Split(raw, ".")
	if len(parts) != 3 {
		return nil, http.StatusUnauthorized, "A JSON web token could not be decoded"
	}
	payload, err := jwt.NewParser().DecodeSegment(parts[1])
	if err != nil {
		return nil, http.StatusUnauthorized, "A JSON web token could not be decoded"
	}
	var claims map[string]any
	dec := json.NewDecoder(strings.NewReader(string(payload)))
	dec.UseNumber()
	if err := dec.Decode(&claims); err != nil {
		return nil, http.StatusUnauthorized, "A JSON web token could not be decoded"
	}
	iat, ok := intClaim(claims["iat"])
	if !ok {
		return nil, http.StatusUnauthorized, "'Issued at' claim ('iat') must be an Integer representing the time that the assertion was issued."
	}
	exp, ok := intClaim(claims["exp"])
	if !ok {
		return nil, http.StatusUnauthorized, "'Expiration time' claim ('exp') must be a numeric value representing the future time at which the assertion expires."
	}

	e.mu.Lock()
	now := e.nowLocked()
	app := e.appByIssuer(claims["iss"])
	var keys []any
	if app != nil {
		for _, k := range app.keys {
			keys = append(keys, k)
		}
	}
	e.mu.Unlock()
	if app == nil {
		return nil, http.StatusUnauthorized, "'Issuer' claim ('iss') must be an Integer or the client ID of a GitHub App that exists."
	}
	verified := false
	for _, k := range keys {
		_, err := jwt.NewParser(jwt.WithValidMethods([]string{"RS256"}), jwt.WithoutClaimsValidation()).Parse(raw, func(*jwt.Token) (any, error) { return k, nil })
		if err == nil {
			verified = true
			break
		}
	}
	if !verified {
		return nil, http.StatusUnauthorized, "A JSON web token could not be decoded"
	}
	switch {
	case time.Unix(iat, 0).After(now.Add(iatSkew)):
		return nil, http.StatusUnauthorized, "'Issued at' claim ('iat') must be an Integer representing a time in the past."
	case !time.Unix(exp, 0).After(now):
		return nil, http.StatusUnauthorized, "'Expiration time' claim ('exp') must be a numeric value representing the future time at which the assertion expires."
	case time.Unix(exp, 0).Sub(time.Unix(iat, 0)) > maxJWTLifetime, time.Unix(exp, 0).Sub(now) > maxJWTLifetime+iatSkew:
		return nil, http.StatusUnauthorized, "'Expiration time' claim ('exp') is too far in the future"
	}
	return app, 0, ""
}

// intClaim accepts JSON integers only, as GitHub does.
func intClaim(v any) (int64, bool) {
	n, ok := v.(json.Number)
	if !ok {
		return 0, false
	}
	i, err := strconv.ParseInt(string(n), 10, 64)
	return i, err == nil
}

// appByIssuer finds the App an iss names: its id (number or string) or its
// client id. Callers hold e.mu.
func (e *Emulator) appByIssuer(iss any) *App {
	var s string
	switch v := iss.(type) {
	case json.Number:
		s = string(v)
	case string:
		s = v
	default:
		return nil
	}
	if id, err := strconv.ParseInt(s, 10, 64); err == nil {
		return e.apps[id]
	}
	for _, a := range e.apps {
		if a.ClientID == s {
			return a
		}
	}
	return nil
}

// verifyToken authenticates an installation token or a user access token:
// present says whether the request carried one at all.
func (e *Emulator) verifyToken(r *http.Request) (tok *token, ut *userToken, ok, present bool) {
	scheme, raw, has := credentials(r)
	if !has || (scheme != "token" && scheme != "bearer") {
		return nil, nil, false, has
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	now := e.nowLocked()
	if strings.HasPrefix(raw, "ghu_") {
		u := e.userTokens[raw]
		if u == nil || !u.live(now) || now.Sub(u.created) < e.faults.ReplicationLag {
			return nil, nil, false, true
		}
		return nil, u, true, true
	}
	t := e.tokens[raw]
	if t == nil || t.revoked || !now.Before(t.expires) || now.Sub(t.created) < e.faults.ReplicationLag {
		return nil, nil, false, true
	}
	if e.installations[t.installation.ID] == nil {
		return nil, nil, false, true
	}
	return t, nil, true, true
}

const tokenAlphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789"

// newTokenValue makes a token in GitHub's installation-token shape.
func newTokenValue() string { return randomToken("ghs_", 36) }

// randomToken is prefix and n random letters and digits.
func randomToken(prefix string, n int) string {
	b := make([]byte, n)
	rand.Read(b)
	for i := range b {
		b[i] = tokenAlphabet[int(b[i])%len(tokenAlphabet)]
	}
	return prefix + string(b)
}
