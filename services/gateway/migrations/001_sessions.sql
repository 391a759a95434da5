-- Single sign-on, kept where every gateway replica sees it: signed-in
-- people's sessions and sign-ins under way. Each is found by the SHA-256
-- (hex) of its random id or state, so the table holds no cookie a reader
-- could present. Times are Unix milliseconds; rows past expire_time are
-- refused and swept.

-- A signed-in person. roles is comma-separated (admin, auditor; empty for
-- a server user); csrf_token is the session's, which its page sends back.
CREATE TABLE sessions (
    id_hash     TEXT PRIMARY KEY,
    person      TEXT NOT NULL,
    login       TEXT NOT NULL,
    roles       TEXT NOT NULL,
    csrf_token  TEXT NOT NULL,
    expire_time BIGINT NOT NULL
);
CREATE INDEX sessions_expire_time ON sessions (expire_time);

-- A sign-in under way: what the provider's answer must match, taken once
-- (deleted as it is read). The PKCE verifier is useless without the
-- authorization code, which only the browser gets.
CREATE TABLE sign_ins (
    state_hash  TEXT PRIMARY KEY,
    verifier    TEXT NOT NULL,
    nonce       TEXT NOT NULL,
    return_to   TEXT NOT NULL,
    expire_time BIGINT NOT NULL
);
CREATE INDEX sign_ins_expire_time ON sign_ins (expire_time);
