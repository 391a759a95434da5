package gateway

import "testing"

// Where a sign-in may send the browser afterwards: a path on this site,
// as a browser reads it (it drops tabs and newlines, and takes a
// backslash for a slash), never another origin.
func TestSafeReturn(t *testing.T) {
	for in, want := range map[string]string{
		"":                                      "/",
		"/":                                     "/",
		"/me":                                   "/me",
		"/me?linked=1":                          "/me?linked=1",
		"/connect/user/callback?code=x&state=y": "/connect/user/callback?code=x&state=y",
		"//evil.example":                        "/",
		"/\\evil.example":                       "/",
		"\\\\evil.example":                      "/",
		"/\t/evil.example":                      "/",
		"/\n/evil.example":                      "/",
		"/\r\n/evil.example":                    "/",
		"\t//evil.example":                      "/",
		" //evil.example":                       "/",
		"https://evil.example/":                 "/",
		"javascript:alert(1)":                   "/",
		"evil.example":                          "/",
		"/%2F/evil.example":                     "/",
		"/a/..//evil.example":                   "/",
		"/.//evil.example":                      "/",
		"/x\\y":                                 "/",
	} {
		if got := safeReturn(in); got != want {
			t.Errorf("safeReturn(%q) = %q, want %q", in, got, want)
		}
	}
}
