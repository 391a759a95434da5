# ghconnect-registry: the connection registry imports the App key GitHub.com
# hands out (BYOK, through the wrapping key), adds versions, configures
# deletion and retirement, deletes keys of ended connections, signs App JWTs
# to check an installation or a new key version, and keeps the App's client
# and webhook secrets as transit ciphertext. It can never make a key
# exportable or back it up in plaintext: those parameters are not allowed.
path "transit/wrapping_key" {
  capabilities = ["read"]
}

path "transit/keys" {
  capabilities = ["list"]
}

path "transit/keys/" {
  capabilities = ["list"]
}

path "transit/keys/ghconnect-*" {
  capabilities = ["create", "read", "update", "delete"]
  allowed_parameters = {
    "type"                   = []
    "ciphertext"             = []
    "hash_function"          = []
    "allow_rotation"         = []
    "deletion_allowed"       = []
    "min_encryption_version" = []
    "min_decryption_version" = []
  }
}

path "transit/sign/ghconnect-*" {
  capabilities = ["update"]
}

path "transit/encrypt/ghconnect-secrets" {
  capabilities = ["update"]
}

path "transit/decrypt/ghconnect-secrets" {
  capabilities = ["update"]
}
