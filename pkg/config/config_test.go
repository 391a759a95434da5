package config

import (
	"errors"
	"flag"
	"testing"
)

type testConfig struct {
	Addr  string
	Limit int
}

func (c *testConfig) Validate() error {
	if c.Limit < 0 {
		return errors.New("limit must not be negative")
	}
	return nil
}

func TestParse(t *testing.T) {
	tests := []struct {
		name      string
		args      []string
		env       map[string]string
		wantAddr  string
		wantLimit int
		wantErr   bool
	}{
		{name: "defaults", wantAddr: ":1", wantLimit: 5},
		{name: "env fills unset", env: map[string]string{"X_LISTEN_ADDR": ":2"}, wantAddr: ":2", wantLimit: 5},
		{name: "flag beats env", args: []string{"-listen-addr", ":3"}, env: map[string]string{"X_LISTEN_ADDR": ":2"}, wantAddr: ":3", wantLimit: 5},
		{name: "bad env value", env: map[string]string{"X_LIMIT": "many"}, wantErr: true},
		{name: "validate runs", args: []string{"-limit", "-1"}, wantErr: true},
		{name: "stray argument", args: []string{"extra"}, wantErr: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var cfg testConfig
			fs := flag.NewFlagSet("t", flag.ContinueOnError)
			fs.StringVar(&cfg.Addr, "listen-addr", ":1", "")
			fs.IntVar(&cfg.Limit, "limit", 5, "")
			lookup := func(k string) (string, bool) { v, ok := tt.env[k]; return v, ok }
			err := parse(fs, tt.args, "X", lookup, &cfg)
			if (err != nil) != tt.wantErr {
				t.Fatalf("err = %v, wantErr %v", err, tt.wantErr)
			}
			if tt.wantErr {
				return
			}
			if cfg.Addr != tt.wantAddr || cfg.Limit != tt.wantLimit {
				t.Errorf("got addr %q limit %d, want %q %d", cfg.Addr, cfg.Limit, tt.wantAddr, tt.wantLimit)
			}
		})
	}
}
