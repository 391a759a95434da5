// Package gen holds the Go code generated from proto/ (do not edit: run
// `make generate`) and the OpenAPI document of the REST API.
package gen

import _ "embed"

// OpenAPI is the OpenAPI v2 document of the REST gateway, generated from the
// protos and their HTTP rules.
//
//go:embed ghconnect.swagger.json
var OpenAPI []byte
