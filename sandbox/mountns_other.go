//go:build !linux

package sandbox

// EnterPrivateMountNamespace is a no-op where there are no mount namespaces.
func EnterPrivateMountNamespace() error { return nil }
