// Package config fills a service's typed configuration from command-line
// flags and the environment. A flag given on the command line wins; otherwise
// the variable PREFIX_FLAG_NAME (upper case, dashes as underscores) applies;
// otherwise the flag's default.
package config

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"strings"
	"syscall"
)

// Validator is implemented by every service's config struct.
type Validator interface {
	Validate() error
}

// Parse parses args into fs, then fills unset flags from the environment, then
// validates cfg.
func Parse(fs *flag.FlagSet, args []string, envPrefix string, cfg Validator) error {
	return parse(fs, args, envPrefix, os.LookupEnv, cfg)
}

func parse(fs *flag.FlagSet, args []string, envPrefix string, lookup func(string) (string, bool), cfg Validator) error {
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("unexpected arguments: %q", fs.Args())
	}
	set := map[string]bool{}
	fs.Visit(func(f *flag.Flag) { set[f.Name] = true })
	var errs []error
	fs.VisitAll(func(f *flag.Flag) {
		if set[f.Name] {
			return
		}
		name := EnvName(envPrefix, f.Name)
		if v, ok := lookup(name); ok {
			if err := fs.Set(f.Name, v); err != nil {
				errs = append(errs, fmt.Errorf("%s: %w", name, err))
			}
		}
	})
	if err := errors.Join(errs...); err != nil {
		return err
	}
	if err := cfg.Validate(); err != nil {
		return fmt.Errorf("invalid configuration: %w", err)
	}
	return nil
}

// EnvName is the environment variable that sets flag name.
func EnvName(prefix, name string) string {
	return prefix + "_" + strings.ToUpper(strings.ReplaceAll(name, "-", "_"))
}

// Service is a service's configuration struct.
type Service interface {
	Validator
	RegisterFlags(fs *flag.FlagSet)
}

// Main is a whole service main: it fills cfg from the command line and the
// environment, runs run until SIGINT or SIGTERM, and exits 1 on any error.
func Main(name, envPrefix string, cfg Service, run func(ctx context.Context) error) {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := func() error {
		fs := flag.NewFlagSet(name, flag.ContinueOnError)
		cfg.RegisterFlags(fs)
		if err := Parse(fs, os.Args[1:], envPrefix, cfg); err != nil {
			return err
		}
		return run(ctx)
	}()
	stop()
	if err != nil && !errors.Is(err, flag.ErrHelp) {
		fmt.Fprintf(os.Stderr, "%s: %v\n", name, err)
		os.Exit(1)
	}
}

// ReadSecret reads a secret file (a token, a role id): its content without
// surrounding white space, which must not be empty.
func ReadSecret(path string) (string, error) {
	raw, err := os.ReadFile(path)
	if err != nil {
		return "", err
	}
	s := strings.TrimSpace(string(raw))
	if s == "" {
		return "", fmt.Errorf("%s is empty", path)
	}
	return s, nil
}
