# ghconnect-operator: an operator rotating a GitHub App key in Vault reads
# the wrapping key, imports a new version of an existing App key
# (import_version), and retires old versions (min_encryption_version /
# min_decryption_version). Nothing else: no new key (import, create), no
# rotate or trim, no signing, export, deletion, decryption, and nothing of
# the secrets key.
#
# Vault globs end a path, so "one App key's import_version" is written with
# a segment wildcard: transit/keys/+/import_version. The mount is
# ghconnect's own, and the only key in it that is not an App key, the
# secrets key, is denied by name below (an exact path outranks a wildcard).
# import_version and config act only on a key that exists; the secrets key
# was never imported, so Vault would refuse import_version on it anyway.
path "transit/wrapping_key" {
  capabilities = ["read"]
}

path "transit/keys" {
  capabilities = ["list"]
}

path "transit/keys/" {
  capabilities = ["list"]
}

path "transit/keys/+" {
  capabilities = ["read"]
}

path "transit/keys/+/import_version" {
  capabilities = ["update"]
  allowed_parameters = {
    "ciphertext"    = []
    "hash_function" = []
  }
}

path "transit/keys/+/config" {
  capabilities = ["update"]
  allowed_parameters = {
    "min_encryption_version" = []
    "min_decryption_version" = []
  }
}

path "transit/keys/ghconnect-secrets" {
  capabilities = ["deny"]
}

path "transit/keys/ghconnect-secrets/*" {
  capabilities = ["deny"]
}
