# ghconnect-broker: the token broker signs GitHub App JWTs with the App keys
# (ghconnect-app-<connection id>) and reads their versions (to follow a
# rotation done in Vault). Nothing else: no import, export, deletion,
# decryption, wrapping key, and nothing of the secrets key.
path "transit/sign/ghconnect-app-*" {
  capabilities = ["update"]
}

path "transit/keys/ghconnect-app-*" {
  capabilities = ["read"]
}
