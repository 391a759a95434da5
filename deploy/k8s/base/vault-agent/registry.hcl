# Vault Agent for the registry: logs in with Vault's Kubernetes auth method as
# role ghconnect-registry (bound to ServiceAccount ghconnect-registry in namespace
# ghconnect, policy ghconnect-registry from deploy/vault), using the pod's
# projected ServiceAccount token (audience "vault"), and keeps the Vault
# token in a memory-backed volume shared with the registry, which reads it with
# -vault-token-file and re-reads it whenever the agent renews or replaces
# it. The Vault address comes from VAULT_ADDR (ConfigMap ghconnect-vault),
# its CA from VAULT_CACERT (production overlay).
exit_after_auth = false

auto_auth {
  method "kubernetes" {
    mount_path = "auth/kubernetes"
    config = {
      role       = "ghconnect-registry"
      token_path = "/var/run/secrets/vault/token"
    }
  }

  sink "file" {
    config = {
      path = "/vault/token/token"
      mode = 0440
    }
  }
}
