//go:build !linux

package snapshot

import v1 "github.com/google/go-containerregistry/pkg/v1"

// ContainerLowers needs Linux.
func (s *Snapshotter) ContainerLowers([]v1.Hash) ([]string, error) { return nil, errUnsupported }

// MountOverlay needs Linux.
func MountOverlay([]string, string, string, string) error { return errUnsupported }
