module github.com/ghconnect/ghconnect/e2e

go 1.26.0

replace (
	github.com/ghconnect/ghconnect/gen => ../gen
	github.com/ghconnect/ghconnect/pkg => ../pkg
)
