module github.com/ghconnect/ghconnect/dev/oidcdev

go 1.26.0

require github.com/oauth2-proxy/mockoidc v0.0.0-20240214162133-caebfff84d25

require (
	github.com/go-jose/go-jose/v3 v3.0.1 // indirect
	github.com/golang-jwt/jwt/v5 v5.3.1 // indirect
	github.com/google/go-cmp v0.7.0 // indirect
	github.com/stretchr/testify v1.12.1 // indirect
	golang.org/x/crypto v0.59.0 // indirect
)
