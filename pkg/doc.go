// Package pkg is the root of ghconnect's shared code: server bootstrap,
// configuration, logging, authentication, validation and SQL storage helpers
// that every service uses. Each subpackage is small and has one job.
package pkg
