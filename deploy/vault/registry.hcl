# ghconnect-registry: the connection registry imports the App key GitHub.com
# hands out (BYOK, through the wrapping key) as ghconnect-app-<connection
# id>, adds versions, configures deletion and retirement, deletes the App
# keys of ended connections, signs App JWTs to check an installation or a
# new key version, and keeps the App's client and webhook secrets as
# transit ciphertext of ghconnect-secrets. It can never make a key
# exportable or back it up in plaintext: those parameters are not allowed.
#
# The secrets key is made by the Vault setup step. Every path below that
# reaches a key by a glob ends in "ghconnect-app-*", which the secrets key's
# name does not match: the registry can encrypt and decrypt with it, and
# can neither read, configure, rotate, trim nor delete it.
path "transit/wrapping_key" {
  capabilities = ["read"]
}

path "transit/keys" {
  capabilities = ["list"]
}

path "transit/keys/" {
  capabilities = ["list"]
}

path "transit/keys/ghconnect-app-*" {
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

path "transit/sign/ghconnect-app-*" {
  capabilities = ["update"]
}

path "transit/encrypt/ghconnect-secrets" {
  capabilities = ["update"]
}

path "transit/decrypt/ghconnect-secrets" {
  capabilities = ["update"]
}
