// Command ghemu runs the GitHub.com emulator for local development.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"log"
	"net"
	"net/http"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/ghconnect/ghconnect/dev/ghemu"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := realMain(ctx); err != nil {
		fmt.Fprintln(os.Stderr, "ghemu:", err)
		os.Exit(1)
	}
}

func realMain(ctx context.Context) error {
	fs := flag.NewFlagSet("ghemu", flag.ContinueOnError)
	addr := fs.String("addr", "127.0.0.1:8300", "listen address (port 0 picks a free one)")
	seed := fs.String("seed", "", "JSON seed file (see seed.example.json)")
	contract := fs.Bool("contract", false, "validate every exchange against GitHub's OpenAPI description and log violations")
	stateFile := fs.String("state-file", "", "keep Apps, installations, repositories, people and their grants here across restarts")
	autoApprove := fs.Bool("auto-approve", false, "create Apps from manifests and install Apps at once, without showing GitHub.com's pages (for scripted browsers)")
	if err := fs.Parse(os.Args[1:]); err != nil {
		return err
	}
	logger := log.New(os.Stderr, "ghemu: ", log.LstdFlags)
	opts := ghemu.Options{AutoApprove: *autoApprove}
	if *contract {
		c, err := ghemu.SharedContract()
		if err != nil {
			return err
		}
		opts.Contract = c
		opts.OnViolation = func(err error) { logger.Printf("CONTRACT VIOLATION: %v", err) }
	}
	emu := ghemu.New(opts)
	if *stateFile != "" {
		if err := emu.LoadState(*stateFile); err != nil {
			return err
		}
		if _, err := os.Stat(*stateFile); err == nil {
			*seed = "" // the saved state already holds the seed
		}
	}
	if *seed != "" {
		if err := emu.SeedFile(*seed); err != nil {
			return err
		}
	}
	lis, err := net.Listen("tcp", *addr)
	if err != nil {
		return err
	}
	srv := &http.Server{Handler: emu, ReadHeaderTimeout: 10 * time.Second}
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(lis) }()
	// The one line on stdout: scripts and tests read the address from it.
	fmt.Printf("GITHUB_API_URL=http://%s\n", lis.Addr())
	select {
	case err := <-errc:
		return err
	case <-ctx.Done():
	}
	sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := srv.Shutdown(sctx); err != nil && !errors.Is(err, http.ErrServerClosed) {
		return err
	}
	if *stateFile != "" {
		return emu.SaveState(*stateFile)
	}
	return nil
}
