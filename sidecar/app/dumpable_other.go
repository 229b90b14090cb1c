//go:build !linux

package app

// undumpable is Linux-only: elsewhere the sidecar runs standalone, on a developer's machine.
func undumpable() error { return nil }
