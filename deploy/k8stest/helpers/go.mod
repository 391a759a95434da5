// Small commands for deploy/k8stest: ociimage (image archives without a
// daemon), pause (the pod sandbox) and oidcdev (dev/oidcdev listening in a
// pod). Its own module, outside go.work: build it with GOWORK=off.
module github.com/ghconnect/ghconnect/deploy/k8stest/helpers

go 1.26.3

require github.com/ghconnect/ghconnect/dev v0.0.0

require (
	github.com/go-jose/go-jose/v3 v3.0.1 // indirect
	github.com/golang-jwt/jwt/v5 v5.3.1 // indirect
	github.com/oauth2-proxy/mockoidc v0.0.0-20240214162133-caebfff84d25 // indirect
	go.yaml.in/yaml/v3 v3.0.6 // indirect
	golang.org/x/crypto v0.59.0 // indirect
)

replace github.com/ghconnect/ghconnect/dev => ../../../dev
