package loadecho_test

import (
	"testing"

	"github.com/ghconnect/ghconnect/pkg/loadecho"
)

// TestRequestSize: the request is as large as asked where the encoding
// allows it, else the nearest size below (an empty payload is not sent;
// a length of 128 or more takes two bytes).
func TestRequestSize(t *testing.T) {
	for _, c := range []struct{ size, reply, want int32 }{
		{0, 0, 0}, {1, 0, 0}, {2, 0, 0}, {3, 0, 3}, {2, 153, 3}, {3, 153, 3}, {5, 153, 3}, {6, 153, 6}, {485, 153, 485},
		{130, 0, 129}, {131, 0, 131}, {16_388, 100, 16_388}, {1 << 20, 0, 1 << 20},
	} {
		req, err := loadecho.Request(c.size, c.reply)
		if err != nil {
			t.Fatal(err)
		}
		if got := int32(req.SizeVT()); got != c.want || req.GetReplyBytes() != c.reply { //nolint:gosec // G115: small sizes
			t.Errorf("Request(%d, %d): %d bytes asking %d, want %d", c.size, c.reply, got, req.GetReplyBytes(), c.want)
		}
	}
	if _, err := loadecho.Request(1<<20+1, 0); err == nil {
		t.Error("a request over 1 MiB: no error")
	}
}
