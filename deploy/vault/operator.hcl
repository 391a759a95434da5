# ghconnect-operator: an operator rotating a GitHub App key in Vault reads
# the wrapping key, imports a new version of a ghconnect-* key, and retires
# old versions (min_encryption_version / min_decryption_version). No
# signing, export, deletion or decryption.
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
  capabilities = ["read", "update"]
  allowed_parameters = {
    "ciphertext"             = []
    "hash_function"          = []
    "min_encryption_version" = []
    "min_decryption_version" = []
  }
}
