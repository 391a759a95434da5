// Command vault is Vault's own command line, agent included, built from
// the Vault module (github.com/hashicorp/vault v1.19.0, the release whose
// server core dev/vaultdev runs): deploy/k8stest's Vault Agent sidecar
// image and the `vault` CLI for the README's Kubernetes auth steps. The
// same entry point as Vault's own main package.
package main

import (
	"os"

	"github.com/hashicorp/vault/command"
)

func main() { os.Exit(command.Run(os.Args[1:])) }
