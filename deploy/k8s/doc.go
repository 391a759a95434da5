// Package k8s holds ghconnect's Kubernetes manifests (a kustomize base in
// base/ and the production overlay in overlays/production) and the tests
// that render them with the kustomize Go API, decode every object strictly
// into the Kubernetes API types and check the properties a production
// deployment depends on. It is its own module so that the kustomize and
// Kubernetes dependencies never reach the services' modules.
package k8s
