# ghconnect-broker: the token broker signs GitHub App JWTs with the App keys
# (ghconnect-app-<connection id>) and reads their versions (to follow a
# rotation done in Vault). For server users' GitHub.com authorization it
# decrypts the App's client secret and keeps the users' tokens encrypted
# with ghconnect-user-tokens, a key no other service may use. Nothing else:
# no import, export, deletion, wrapping key, no encryption with the
# secrets key.
path "transit/sign/ghconnect-app-*" {
  capabilities = ["update"]
}

path "transit/keys/ghconnect-app-*" {
  capabilities = ["read"]
}

path "transit/decrypt/ghconnect-secrets" {
  capabilities = ["update"]
}

path "transit/encrypt/ghconnect-user-tokens" {
  capabilities = ["update"]
}

path "transit/decrypt/ghconnect-user-tokens" {
  capabilities = ["update"]
}
