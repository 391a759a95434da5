# ghconnect-broker: the token broker signs GitHub App JWTs with the App keys
# and reads their versions (to follow a rotation done in Vault). Nothing
# else: no import, export, deletion, decryption or wrapping key.
path "transit/sign/ghconnect-*" {
  capabilities = ["update"]
}

path "transit/keys/ghconnect-*" {
  capabilities = ["read"]
}
