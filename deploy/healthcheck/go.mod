module github.com/ghconnect/ghconnect/deploy/healthcheck

go 1.26.0
