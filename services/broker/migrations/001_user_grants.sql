-- User authorization: what the broker keeps of a server user's GitHub App
-- user authorization on GitHub.com. Tokens and the PKCE verifier are Vault
-- transit ciphertext of the key ghconnect-user-tokens; nothing here is a
-- token in plaintext. Times are Unix milliseconds.

-- An authorization under way: single-use, bound to the person and the
-- connection, found by the sha256 of its state.
CREATE TABLE user_authorizations (
    state_hash          TEXT PRIMARY KEY,
    connection_id       TEXT NOT NULL,
    server_user         TEXT NOT NULL,
    redirect_uri        TEXT NOT NULL,
    verifier_ciphertext TEXT NOT NULL,
    expire_time         BIGINT NOT NULL
);

-- A person's grant. generation counts refreshes: a replica that claims a
-- refresh (refreshing_until in the future) is the only one to use the
-- single-use refresh token; the others wait for the next generation.
CREATE TABLE user_grants (
    connection_id       TEXT NOT NULL,
    server_user         TEXT NOT NULL,
    github_id           BIGINT NOT NULL,
    github_login        TEXT NOT NULL,
    status              INTEGER NOT NULL,
    grant_time          BIGINT NOT NULL,
    access_ciphertext   TEXT NOT NULL,
    access_expire_time  BIGINT NOT NULL,
    refresh_ciphertext  TEXT NOT NULL,
    refresh_expire_time BIGINT NOT NULL,
    generation          BIGINT NOT NULL,
    refreshing_until    BIGINT NOT NULL,
    PRIMARY KEY (connection_id, server_user)
);

-- One GitHub.com account per connection: GitHub keeps one grant per App
-- and account, which two server users must not share.
CREATE UNIQUE INDEX user_grants_account ON user_grants (connection_id, github_id);
