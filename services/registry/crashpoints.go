//go:build crashpoints

package registry

import (
	"errors"
	"flag"
	"fmt"
	"os"
)

// Crash points are for the crash tests (e2e) only, and exist only in a
// binary built with -tags crashpoints: the registry ends right after a
// step of enabling or of disconnecting, to prove that a restart (or
// another replica) reaches the same end state. An ordinary build has
// neither these flags nor this code (crashpoints_off.go).

// crashConfig says after which step a crash test ends the process.
type crashConfig struct {
	// after is the step: "key_imported", or a move's history action such
	// as "app_created" or "disconnect_step:tokens_revoked".
	after string
	// mode "exit" (or empty) ends the process (status 75); "hang" stops
	// it at the step without exiting (the operation that reached it never
	// returns), for the test to kill -9 it: a stuck replica keeps its
	// connections, and with them its leases, until it is killed.
	mode string
}

func (c *crashConfig) registerFlags(fs *flag.FlagSet) {
	fs.StringVar(&c.after, "crash-after", "", `crash tests: end the process right after this step ("key_imported", or a history action such as "disconnect_step:tokens_revoked")`)
	fs.StringVar(&c.mode, "crash-mode", "exit", `crash tests: "exit" (status 75) or "hang" at the step, for the test to kill`)
}

func (c *crashConfig) validate() error {
	if c.mode != "" && c.mode != "exit" && c.mode != "hang" {
		return errors.New(`-crash-mode must be "exit" or "hang"`)
	}
	return nil
}

// at ends (or stops) the process if the crash test named step.
func (c crashConfig) at(step string) {
	if c.after == "" || c.after != step {
		return
	}
	if c.mode == "hang" {
		fmt.Fprintf(os.Stderr, "crash test: stopped after %s\n", step)
		select {}
	}
	fmt.Fprintf(os.Stderr, "crash test: exiting after %s\n", step)
	os.Exit(75)
}
